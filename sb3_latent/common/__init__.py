"""Code shared by the sb3-latent algorithms."""

from sb3_latent.common.action_generator import ActionGenerator

__all__ = ["ActionGenerator"]
