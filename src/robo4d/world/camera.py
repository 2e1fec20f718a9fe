"""Free MuJoCo cameras with exact OpenCV intrinsics/extrinsics, and the egocentric camera's motion.

Meta-World's fixed corner cameras render upside down, so every robo4d camera is a free camera (lookat,
distance, azimuth, elevation). Intrinsics follow from the vertical field of view: MuJoCo renders square
pixels with the principal point at the image centre; pixel (x, y) is centred at (x + 0.5, y + 0.5), so
cx = W / 2 and cy = H / 2. Extrinsics are read back from the scene's GL camera after `update_scene`, so they
are exactly what was rendered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robo4d.world._mujoco import mujoco


@dataclass(frozen=True, kw_only=True)
class FreeCamera:
    """A free camera pose; `lookat` in world metres, angles in degrees (MuJoCo's conventions)."""

    lookat: tuple[float, float, float]
    distance: float
    azimuth: float
    elevation: float

    def apply(self, cam: mujoco.MjvCamera) -> None:
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.lookat[:] = self.lookat
        cam.distance = self.distance
        cam.azimuth = self.azimuth
        cam.elevation = self.elevation


# The fixed third-person view of the robot demos: the whole workspace from the front, slightly above.
FRONT = FreeCamera(lookat=(0.0, 0.7, 0.18), distance=1.35, azimuth=-90.0, elevation=-30.0)
# The wrist-like view: rides with the gripper (Meta-World's hand never rotates, so only its position matters),
# above and in front of it, looking down past the fingers at what the hand is about to touch.
WRIST_OFFSET = np.array([0.0, 0.0, -0.12])  # lookat relative to the tool centre point
WRIST_DISTANCE, WRIST_AZIMUTH, WRIST_ELEVATION = 0.4, -90.0, -65.0


def wrist_camera(tcp: np.ndarray) -> FreeCamera:
    lookat = np.asarray(tcp, np.float64) + WRIST_OFFSET
    return FreeCamera(
        lookat=tuple(lookat.tolist()), distance=WRIST_DISTANCE, azimuth=WRIST_AZIMUTH, elevation=WRIST_ELEVATION
    )


def intrinsics(height: int, width: int, fovy_deg: float) -> np.ndarray:
    """(3, 3) float32 pinhole matrix of a MuJoCo camera with vertical field of view `fovy_deg`."""
    f = (height / 2) / math.tan(math.radians(fovy_deg) / 2)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], np.float32)


def extrinsics_from_scene(scene: mujoco.MjvScene) -> np.ndarray:
    """(4, 4) float32 world-from-camera transform (OpenCV: x right, y down, z forward) of the rendered view.

    The scene holds two stereo eyes, each half the eye separation to one side; a mono image is rendered from
    their average, so that is the camera (either eye alone would put every pose centimetres sideways)."""
    gl = mujoco.mjv_averageCamera(scene.camera[0], scene.camera[1])
    forward = np.asarray(gl.forward, np.float64)
    up = np.asarray(gl.up, np.float64)
    right = np.cross(forward, up)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2] = right, -up, forward
    pose[:3, 3] = gl.pos
    return pose.astype(np.float32)


@dataclass(frozen=True, kw_only=True)
class EgoMotion:
    """A head-mounted camera: a random base pose per episode, slow sway and per-frame shake.

    Sway: each pose parameter drifts as a sinusoid (random phase and a period of a few seconds), like a
    person looking around while working; shake: independent Gaussian jitter every frame, like head tremor.
    """

    base: FreeCamera
    sway_lookat: np.ndarray  # (3,) metres
    sway_angles: np.ndarray  # (2,) degrees (azimuth, elevation)
    periods: np.ndarray  # (5,) seconds, one per parameter
    phases: np.ndarray  # (5,) radians
    shake_lookat: np.ndarray  # (T, 3) metres
    shake_angles: np.ndarray  # (T, 2) degrees

    @staticmethod
    def sample(rng: np.random.Generator, num_frames: int, *, centre: np.ndarray) -> EgoMotion:
        lookat = centre + rng.uniform([-0.06, -0.06, -0.02], [0.06, 0.06, 0.04])
        base = FreeCamera(
            lookat=tuple(lookat.tolist()),
            distance=float(rng.uniform(0.7, 0.95)),
            azimuth=float(-90.0 + rng.uniform(-40.0, 40.0)),
            elevation=float(rng.uniform(-58.0, -38.0)),
        )
        return EgoMotion(
            base=base,
            sway_lookat=rng.uniform(0.01, 0.03, 3),
            sway_angles=rng.uniform(1.0, 4.0, 2),
            periods=rng.uniform(2.0, 6.0, 5),
            phases=rng.uniform(0, 2 * np.pi, 5),
            shake_lookat=rng.normal(0.0, 0.0015, (num_frames, 3)),
            shake_angles=rng.normal(0.0, 0.25, (num_frames, 2)),
        )

    def at(self, frame: int, fps: float) -> FreeCamera:
        t = frame / fps
        wave = np.sin(2 * np.pi * t / self.periods + self.phases)  # (5,)
        lookat = np.asarray(self.base.lookat) + self.sway_lookat * wave[:3] + self.shake_lookat[frame]
        azimuth, elevation = np.array([self.base.azimuth, self.base.elevation]) + (
            self.sway_angles * wave[3:] + self.shake_angles[frame]
        )
        return FreeCamera(
            lookat=tuple(lookat.tolist()),
            distance=self.base.distance,
            azimuth=float(azimuth),
            elevation=float(elevation),
        )
