from sb3_latent.latent_sac.latent_sac import LatentSAC
from sb3_latent.latent_sac.policies import CnnPolicy, LatentSACPolicy, MlpPolicy, MultiInputPolicy

__all__ = ["CnnPolicy", "LatentSAC", "LatentSACPolicy", "MlpPolicy", "MultiInputPolicy"]
