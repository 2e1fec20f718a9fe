"""IGOR (Chen et al., 2024): latent actions shared by human video and robots, a foundation policy over them,
a world model that plays them forward, and a low-level policy that turns them into robot actions.

config.py presets; blocks.py shared transformer pieces; vq.py the codebook; lam.py the latent action model;
foundation.py the foundation policy and low-level head; world_model.py rectified flow; policy.py the Policy;
frames.py video lookup; label.py dataset labelling; metrics.py predictiveness; imagine.py latent-action
transfer videos; recipes.py the multi-stage recipe; commands.py the `label` and `imagine` CLI groups.
"""

from robo4d.methods.igor.config import PRESETS, IGORConfig, preset
from robo4d.methods.igor.policy import IGORPolicy

__all__ = ["PRESETS", "IGORConfig", "IGORPolicy", "preset"]
