"""GR-1 (Wu et al., ICLR 2024): a GPT-style policy pre-trained to predict future frames of human video.

config.py presets and the config; model.py modules and losses; actions.py state inputs and action targets;
policy.py the Policy; inference.py step-wise decoding; release.py import of the authors' checkpoint;
recipes.py the two-stage schedule and the paper's ablations (imported by robo4d.train.recipes.all_recipes);
model_info.py parameter counts. Importing this package registers the method and its presets.
"""

from robo4d.methods.base import register_presets
from robo4d.methods.gr1.config import PRESETS, GR1Config, preset
from robo4d.methods.gr1.model_info import VARIANTS, parameter_counts
from robo4d.methods.gr1.policy import GR1Policy

register_presets("gr1", PRESETS, variants=VARIANTS, parameter_counts=parameter_counts)

__all__ = ["PRESETS", "GR1Config", "GR1Policy", "preset"]
