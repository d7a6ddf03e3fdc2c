from sb3_latent.latent_sac.latent_sac import LatentSAC
from sb3_latent.latent_sac.policies import LatentSACPolicy, MlpPolicy

__all__ = ["LatentSAC", "LatentSACPolicy", "MlpPolicy"]
