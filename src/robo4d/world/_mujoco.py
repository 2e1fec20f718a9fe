"""MuJoCo, imported for offscreen rendering: EGL unless the user chose another backend (MUJOCO_GL)."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # read once, when mujoco is first imported

import mujoco  # noqa: E402

__all__ = ["mujoco"]
