"""`WorldEnv`: one Meta-World task with robo4d's cameras, as demos are recorded and policies are evaluated.

Observations carry, per camera, RGB (H, W, 3) uint8, depth (H, W) float32 metres (z along the optical axis),
intrinsics (3, 3) and extrinsics (4, 4, world-from-camera, OpenCV), and the proprio state (8,) = tool-centre
xyz + hand quaternion (w, x, y, z) + gripper opening in [0, 1] (1 = open; Meta-World's finger distance / 0.1 m).
Each `step` applies the action for ACTION_REPEAT simulator steps (80 Hz -> FPS = 40 recorded steps/s).
`done` comes after `max_steps` steps (default 100: the experts finish every robot task in under 60);
`depth=False` skips depth rendering where only RGB is needed (closed-loop evaluation), nearly halving the cost.

The "human" embodiment (`human=True`) hides the arm links and re-colours the hand skin-toned, so the same
scenes look like a person's hand doing the work; it is used only for the human-video datasets.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from robo4d import types
from robo4d.types import Observation
from robo4d.world import tasks
from robo4d.world._mujoco import mujoco
from robo4d.world.camera import FRONT, FreeCamera, extrinsics_from_scene, intrinsics, wrist_camera

HIDDEN_GROUP = 5  # geom group switched off in every render: the arm links in the human embodiment
SKIN_RGBA = np.array([0.86, 0.64, 0.52, 1.0], np.float32)
ARM_ROOT, HAND_ROOT = "base", "hand"  # the robot's body subtree, and the part of it that stays visible


def _subtree(model: mujoco.MjModel, root: int) -> set[int]:
    bodies = {root}
    for b in range(model.nbody):  # parents always precede children in MuJoCo's body order
        if model.body_parentid[b] in bodies and b != 0:
            bodies.add(b)
    return bodies


class WorldEnv:
    """A Meta-World task with a seeded random initial state and robo4d's cameras."""

    def __init__(
        self,
        task: str,
        *,
        seed: int,
        image_size: int | tuple[int, int] = 128,
        cameras: tuple[str, ...] = (types.CAM_FRONT, types.CAM_WRIST),
        max_steps: int = 100,
        depth: bool = True,
        human: bool = False,
        ego: Callable[[int], FreeCamera] | None = None,
    ) -> None:
        tasks.check_tasks((task,))
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS
        from metaworld.policies import ENV_POLICY_MAP

        self.task, self.seed, self.max_steps = task, seed, max_steps
        self.instruction = tasks.INSTRUCTIONS[task]
        self.height, self.width = (image_size, image_size) if isinstance(image_size, int) else image_size
        known = {types.CAM_FRONT, types.CAM_WRIST} | ({types.CAM_EGO} if ego is not None else set())
        for cam in cameras:
            if cam not in known:
                raise ValueError(f"unknown camera {cam!r}: this env has {sorted(known)}")
        self.cameras, self._ego, self._depth = cameras, ego, depth
        env = ALL_V3_ENVIRONMENTS[task]()
        # Seeded random initial states, as Meta-World's benchmarks sample them, without the MT1 task pickles.
        env._partially_observable = False
        del env.sawyer_observation_space  # recomputed for the fully observable layout the experts read
        env._freeze_rand_vec, env.seeded_rand_vec, env._set_task_called = False, True, True
        env.seed(seed)
        env.max_path_length = 10**9  # robo4d's own step budget applies
        self._env, self._expert = env, ENV_POLICY_MAP[task]()
        self.model, self.data = env.model, env.data
        self.model.vis.quality.offsamples = 0
        self._option = mujoco.MjvOption()
        self._option.sitegroup[:] = 0  # goal markers and helper sites are not part of the scene
        self._option.geomgroup[HIDDEN_GROUP] = 0
        self.hand_bodies = _subtree(self.model, self.model.body(HAND_ROOT).id)
        if human:
            arm = _subtree(self.model, self.model.body(ARM_ROOT).id) - self.hand_bodies
            for g in range(self.model.ngeom):
                body = self.model.geom_bodyid[g]
                if body in arm:
                    self.model.geom_group[g] = HIDDEN_GROUP
                elif body in self.hand_bodies:
                    self.model.geom_rgba[g] = SKIN_RGBA
                    self.model.geom_matid[g] = -1  # a material would override the colour
        self._renderer = mujoco.Renderer(self.model, self.height, self.width)
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        self._camera = mujoco.MjvCamera()
        self._intrinsics = intrinsics(self.height, self.width, float(self.model.vis.global_.fovy))
        self._raw_obs: np.ndarray | None = None
        self.steps = 0

    # --- simulation --------------------------------------------------------------------------------------------
    def reset(self) -> Observation:
        self.reset_state()
        return self.observe()

    def reset_state(self) -> None:
        """Draw the next seeded initial state without rendering (e.g. to aim a camera at the scene first)."""
        self._raw_obs, _ = self._env.reset()
        self.steps = 0

    def step(self, action: np.ndarray) -> tuple[Observation, float, bool, bool]:
        """Apply a 4-D Meta-World action (dx, dy, dz, gripper effort; clipped to [-1, 1]) for one recorded step."""
        action = np.asarray(action, np.float64)
        if action.shape != (types.METAWORLD_ACTION_DIM,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be {types.METAWORLD_ACTION_DIM} finite numbers, got {action!r}")
        action = np.clip(action, -1.0, 1.0)
        reward, success = 0.0, False
        for _ in range(tasks.ACTION_REPEAT):
            self._raw_obs, r, _, _, info = self._env.step(action)
            reward += float(r)
            success = success or bool(info["success"])
        self.steps += 1
        return self.observe(), reward, success, self.steps >= self.max_steps

    def expert_action(self) -> np.ndarray:
        """Meta-World's scripted expert's action for the current state, (4,) float32 in [-1, 1]."""
        assert self._raw_obs is not None, "reset() first"
        with warnings.catch_warnings():
            # The experts warn whenever an action leaves [-1, 1]; the clip below is the env's own.
            warnings.filterwarnings("ignore", message=r"Constant\(s\) may be too high", category=UserWarning)
            action = self._expert.get_action(self._raw_obs)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def state(self) -> np.ndarray:
        """(8,) float32: tool-centre xyz, hand quaternion (w, x, y, z), gripper opening in [0, 1]."""
        assert self._raw_obs is not None, "reset() first"
        quat = self.data.body(HAND_ROOT).xquat
        return np.concatenate([self._env.tcp_center, quat, self._raw_obs[3:4]]).astype(np.float32)

    # --- rendering ---------------------------------------------------------------------------------------------
    def camera_pose(self, cam: str) -> FreeCamera:
        if cam == types.CAM_FRONT:
            return FRONT
        if cam == types.CAM_WRIST:
            return wrist_camera(self._env.tcp_center)
        assert self._ego is not None
        return self._ego(self.steps)

    def render(self, cam: str, *, depth: bool = True, segmentation: bool = False) -> dict[str, np.ndarray]:
        """rgb (H, W, 3) uint8, extrinsics (4, 4); + depth (H, W) float32 m; + body (H, W) int32 ids (-1: none)."""
        self.camera_pose(cam).apply(self._camera)
        r = self._renderer
        r.update_scene(self.data, camera=self._camera, scene_option=self._option)
        out = {"rgb": r.render().copy(), "extrinsics": extrinsics_from_scene(r.scene)}
        if depth:
            r.enable_depth_rendering()
            out["depth"] = r.render().astype(np.float32)
            r.disable_depth_rendering()
        if segmentation:
            r.enable_segmentation_rendering()
            seg = r.render()  # (H, W, 2): object id, object type
            r.disable_segmentation_rendering()
            geom = np.where(seg[..., 1] == mujoco.mjtObj.mjOBJ_GEOM, seg[..., 0], -1)
            out["body"] = np.where(geom >= 0, self.model.geom_bodyid[np.maximum(geom, 0)], -1).astype(np.int32)
        return out

    def observe(self) -> Observation:
        views = {cam: self.render(cam, depth=self._depth) for cam in self.cameras}
        return Observation(
            images={c: v["rgb"] for c, v in views.items()},
            depth={c: v["depth"] for c, v in views.items()} if self._depth else None,
            intrinsics={c: self._intrinsics.copy() for c in views},
            extrinsics={c: v["extrinsics"] for c, v in views.items()},
            state=self.state(),
            task=self.instruction,
        )

    def body_poses(self) -> tuple[np.ndarray, np.ndarray]:
        """World pose of every body: positions (nbody, 3) and rotation matrices (nbody, 3, 3), float64."""
        return self.data.xpos.copy(), self.data.xmat.reshape(-1, 3, 3).copy()

    def close(self) -> None:
        self._renderer.close()
        self._env.close()
