"""ARM4R (Niu, Sharma et al., ICML 2025): auto-regressive robot policy pre-trained on 4D point tracks.

config.py presets and the config; model.py modules and loss; policy.py the Policy; inference.py step-wise
decoding; geometry.py pose targets; release.py import of the authors' released checkpoints.
"""

from robo4d.methods.arm4r.config import PRESETS, ARM4RConfig, preset
from robo4d.methods.arm4r.policy import ARM4RPolicy

__all__ = ["PRESETS", "ARM4RConfig", "ARM4RPolicy", "preset"]
