"""Suite-wide setting: MuJoCo renders offscreen through EGL (read once, when mujoco is first imported)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
