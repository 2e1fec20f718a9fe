"""IGOR (Chen et al., 2024): latent actions shared by human video and robots, a foundation policy over them,
a world model that plays them forward, and a low-level policy that turns them into robot actions.

config.py presets; blocks.py shared transformer pieces; vq.py the codebook; lam.py the latent action model;
foundation.py the foundation policy and low-level head; world_model.py rectified flow; policy.py the Policy;
frames.py video lookup; label.py dataset labelling; metrics.py predictiveness; imagine.py latent-action
transfer videos; recipes.py the recipe (imported by robo4d.train.recipes.all_recipes); model_info.py
parameter counts; commands.py the `label` and `imagine` CLI groups. Importing this package registers the
method and its presets.
"""

from robo4d.methods.base import register_presets
from robo4d.methods.igor.config import PRESETS, IGORConfig, preset
from robo4d.methods.igor.model_info import VARIANTS, parameter_counts
from robo4d.methods.igor.policy import IGORPolicy

register_presets("igor", PRESETS, variants=VARIANTS, parameter_counts=parameter_counts)

__all__ = ["PRESETS", "IGORConfig", "IGORPolicy", "preset"]
