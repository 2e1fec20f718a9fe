"""ARM4R (Niu, Sharma et al., ICML 2025): auto-regressive robot policy pre-trained on 4D point tracks.

config.py presets and the config; model.py modules and loss; policy.py the Policy; inference.py step-wise
decoding; geometry.py pose targets; release.py import of the authors' released checkpoints; recipes.py the
training recipes (imported by robo4d.train.recipes.all_recipes); model_info.py parameter counts. Importing
this package registers the method and its presets.
"""

from robo4d.methods.arm4r.config import PRESETS, ARM4RConfig, preset
from robo4d.methods.arm4r.model_info import VARIANTS, parameter_counts
from robo4d.methods.arm4r.policy import ARM4RPolicy
from robo4d.methods.base import register_presets

register_presets("arm4r", PRESETS, variants=VARIANTS, parameter_counts=parameter_counts)

__all__ = ["PRESETS", "ARM4RConfig", "ARM4RPolicy", "preset"]
