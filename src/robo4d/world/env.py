"""`WorldEnv`: one Meta-World task with robo4d's cameras, as demos are recorded and policies are evaluated.

Observations carry, per camera, RGB (H, W, 3) uint8, depth (H, W) float32 metres (z along the optical axis),
intrinsics (3, 3) and extrinsics (4, 4, world-from-camera, OpenCV), and the proprio state (8,) = tool-centre
xyz + hand quaternion (w, x, y, z) + gripper opening in [0, 1] (1 = open; Meta-World's finger distance / 0.1 m).
Each `step` applies the action for ACTION_REPEAT simulator steps (80 Hz -> FPS = 40 recorded steps/s).
`done` comes after `max_steps` steps (default 100: the experts finish every robot task in under 60);
`depth=False` skips depth rendering where only RGB is needed (closed-loop evaluation), nearly halving the cost.

The "human" embodiment (`human=True`) hides the arm links and re-colours the hand skin-toned, so the same
scenes look like a person's hand doing the work; it is used only for the human-video datasets.

Goal markers: where a task's success is measured against a target point (`tasks.GOAL_SITES`: reach's goal,
push's target, the drawer's open position ...), that point is drawn as one small sphere of one colour in every
task, so a policy can see it and human video shows the same cue; every other site is a helper and stays hidden.

`WorldOptions` are the generalisation settings: wider initial-state ranges, a shifted front camera and
purely visual distractor objects (scene decorations that physics never sees, so dynamics are unchanged).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from robo4d import types
from robo4d.types import Observation
from robo4d.world import tasks
from robo4d.world._mujoco import mujoco
from robo4d.world.camera import FRONT, FreeCamera, extrinsics_from_scene, intrinsics, wrist_camera

HIDDEN_GROUP = 5  # geom group switched off in every render: the arm links in the human embodiment
GOAL_GROUP = 4  # the one site group rendered: goal markers
GOAL_RGBA = np.array([0.95, 0.1, 0.85, 1.0], np.float32)  # magenta: no Meta-World object has this colour
GOAL_RADIUS = 0.02  # metres: ~4 px wide in the 128 px front view (Meta-World's own markers go down to 5 mm)
DISTRACTOR_COLOURS = np.array(
    [[0.1, 0.5, 0.95, 1], [0.95, 0.75, 0.1, 1], [0.2, 0.8, 0.3, 1], [0.6, 0.3, 0.1, 1]], np.float32
)
TABLE_XY = ((-0.45, 0.4), (0.45, 0.9))  # (low, high) world x/y of the table area distractors are placed on


@dataclass(frozen=True, kw_only=True)
class WorldOptions:
    """Generalisation settings of a world (the defaults are Meta-World's own)."""

    init_range: float = 1.0  # scale of the initial-state sampling box (objects, goals) about its centre
    camera_shift: float = 0.0  # degrees added to the front camera's azimuth (half as much to its elevation)
    distractors: int = 0  # visual distractor objects on the table, placed per episode from the env seed

    def __post_init__(self) -> None:
        if not 0.0 < self.init_range <= 3.0:
            raise ValueError(f"WorldOptions.init_range must be in (0, 3], got {self.init_range}")
        if not -45.0 <= self.camera_shift <= 45.0:
            raise ValueError(f"WorldOptions.camera_shift must be in [-45, 45] degrees, got {self.camera_shift}")
        if not 0 <= self.distractors <= 8:
            raise ValueError(f"WorldOptions.distractors must be in [0, 8], got {self.distractors}")


DEFAULT_OPTIONS = WorldOptions()  # Meta-World's own world


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
        options: WorldOptions = DEFAULT_OPTIONS,
    ) -> None:
        tasks.check_tasks((task,))
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS
        from metaworld.policies import ENV_POLICY_MAP

        self.task, self.seed, self.max_steps, self.options = task, seed, max_steps, options
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
        if options.init_range != 1.0:
            space = env._random_reset_space
            centre, half = (space.high + space.low) / 2, options.init_range * (space.high - space.low) / 2
            env._random_reset_space = type(space)(centre - half, centre + half, dtype=space.dtype)
        env.max_path_length = 10**9  # robo4d's own step budget applies
        self._env, self._expert = env, ENV_POLICY_MAP[task]()
        self.model, self.data = env.model, env.data
        self.model.vis.quality.offsamples = 0
        self._option = mujoco.MjvOption()
        self._option.sitegroup[:] = 0  # helper sites are not part of the scene ...
        self._option.sitegroup[GOAL_GROUP] = 1  # ... the goal marker is
        self._option.geomgroup[HIDDEN_GROUP] = 0
        self.goal_site = self._show_goal(tasks.GOAL_SITES.get(task))
        self._distractors: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (pos, size, rgba) per object
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
        self.steps = self._episodes = 0  # episodes begun: each draws its own distractors

    def _show_goal(self, name: str | None) -> int:
        """Put site `name` (if any) alone in the rendered site group, as a goal marker; returns its id or -1."""
        m = self.model
        m.site_group[m.site_group == GOAL_GROUP] = HIDDEN_GROUP
        if name is None:
            return -1
        site = m.site(name).id
        m.site_group[site] = GOAL_GROUP
        m.site_type[site] = mujoco.mjtGeom.mjGEOM_SPHERE
        m.site_size[site] = GOAL_RADIUS
        m.site_rgba[site] = GOAL_RGBA
        return site

    # --- simulation --------------------------------------------------------------------------------------------
    def reset(self) -> Observation:
        self.reset_state()
        return self.observe()

    def reset_state(self) -> None:
        """Draw the next seeded initial state without rendering (e.g. to aim a camera at the scene first)."""
        self._raw_obs, _ = self._env.reset()
        # Meta-World moves goal sites in the model after its last forward pass: update the poses it renders.
        mujoco.mj_kinematics(self.model, self.data)
        self.steps = 0
        self._distractors = self._place_distractors()

    def _place_distractors(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Seeded table positions away from the task's objects and goal; a fresh draw every episode."""
        if not self.options.distractors:
            return []
        rng = np.random.default_rng([self.seed, self._episodes])
        self._episodes += 1
        avoid = [np.asarray(self._env._target_pos)[:2], np.asarray(self._env.tcp_center)[:2]]
        avoid += list(np.asarray(self._env._get_pos_objects()).reshape(-1, 3)[:, :2])
        placed: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        while len(placed) < self.options.distractors:
            xy = rng.uniform(*TABLE_XY)
            if all(np.linalg.norm(xy - a) > 0.12 for a in avoid):
                size = rng.uniform(0.02, 0.04, 3)
                colour = DISTRACTOR_COLOURS[len(placed) % len(DISTRACTOR_COLOURS)]
                placed.append((np.array([*xy, size[2]]), size, colour))
                avoid.append(xy)
        return placed

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
            shift = self.options.camera_shift
            if not shift:
                return FRONT
            return FreeCamera(lookat=FRONT.lookat, distance=FRONT.distance, azimuth=FRONT.azimuth + shift,
                              elevation=FRONT.elevation - abs(shift) / 2)  # fmt: skip
        if cam == types.CAM_WRIST:
            return wrist_camera(self._env.tcp_center)
        assert self._ego is not None
        return self._ego(self.steps)

    def render(self, cam: str, *, depth: bool = True, segmentation: bool = False) -> dict[str, np.ndarray]:
        """rgb (H, W, 3) uint8, extrinsics (4, 4); + depth (H, W) float32 m; + body and site (H, W) int32 ids
        (-1: none; a goal marker's pixels have a site id and no body)."""
        self.camera_pose(cam).apply(self._camera)
        r = self._renderer
        r.update_scene(self.data, camera=self._camera, scene_option=self._option)
        for pos, size, rgba in self._distractors:
            if r.scene.ngeom < r.scene.maxgeom:
                geom = r.scene.geoms[r.scene.ngeom]
                mujoco.mjv_initGeom(geom, mujoco.mjtGeom.mjGEOM_BOX, size, pos, np.eye(3).ravel(), rgba)
                # No model object: segmentation labels it "none"; segid is its slot, as MuJoCo numbers its own.
                geom.objtype, geom.objid, geom.segid = mujoco.mjtObj.mjOBJ_UNKNOWN, -1, r.scene.ngeom
                r.scene.ngeom += 1
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
            out["site"] = np.where(seg[..., 1] == mujoco.mjtObj.mjOBJ_SITE, seg[..., 0], -1).astype(np.int32)
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
