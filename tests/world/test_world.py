"""The embedded world: task split, seeds, cameras, ground-truth tracks, datasets, determinism, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robo4d import types
from robo4d.data.reader import Dataset
from robo4d.world import tasks
from robo4d.world.commands import Human, Robot
from robo4d.world.generate import generate
from robo4d.world.tracks import lift_errors


def test_task_split_is_disjoint_and_complete() -> None:
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    assert set(tasks.ALL_TASKS) == set(ALL_V3_ENVIRONMENTS)
    assert not set(tasks.ROBOT_TASKS) & set(tasks.HUMAN_TASKS)
    assert len(tasks.ROBOT_TASKS) + len(tasks.HUMAN_TASKS) == 50
    assert len(set(tasks.INSTRUCTIONS.values())) == 50  # an instruction names its task


def test_demo_and_eval_seeds_never_meet() -> None:
    demos = {tasks.demo_seed(s, e) for s in range(tasks.MAX_DEMO_SEED) for e in (0, 99_999)}
    evals = {tasks.eval_seed(s, e) for s in (0, 99) for e in (0, 9_999)}
    assert max(demos) < min(evals)
    with pytest.raises(ValueError, match="--seed must be in"):
        tasks.demo_seed(tasks.MAX_DEMO_SEED, 0)


def test_unknown_task_names_suggest_the_closest() -> None:
    with pytest.raises(ValueError, match="did you mean 'drawer-open-v3'"):
        tasks.check_tasks(("drawer-opn-v3",))
    with pytest.raises(SystemExit, match="unknown robot task 'door-close-v3'"):
        Robot(out=Path("/nonexistent/x"), tasks=("door-close-v3",)).run()  # a human task, not a robot one
    with pytest.raises(KeyError, match="did you mean 'tiny'"):
        tasks.world_preset("tinny")


@pytest.fixture(scope="module")
def env():
    from robo4d.world.env import WorldEnv

    e = WorldEnv("reach-v3", seed=3, image_size=64)
    yield e
    e.close()


def test_env_observation_layout(env) -> None:
    obs = env.reset()
    assert obs.images[types.CAM_FRONT].shape == (64, 64, 3) and obs.images[types.CAM_FRONT].dtype == np.uint8
    assert obs.depth[types.CAM_WRIST].shape == (64, 64) and obs.state.shape == (types.STATE_DIM,)
    assert np.isclose(np.linalg.norm(obs.state[3:7]), 1.0, atol=1e-5)  # a unit quaternion
    obs2, reward, success, done = env.step(env.expert_action())
    assert isinstance(success, bool) and not done and np.isfinite(reward)
    with pytest.raises(ValueError, match="action must be 4 finite numbers"):
        env.step(np.array([0.0, np.nan, 0.0, 0.0]))


def test_camera_model_projects_the_hand_onto_the_hand(env) -> None:
    """The tool centre point, projected with the stored intrinsics/extrinsics, lands on a hand pixel."""
    env.reset()
    for cam in (types.CAM_FRONT,):
        view = env.render(cam, segmentation=True)
        k, pose = env.observe().intrinsics[cam], view["extrinsics"].astype(np.float64)
        # A point on the hand body (its origin sits inside the hand geometry).
        p = env.data.body("hand").xpos
        c = (p - pose[:3, 3]) @ pose[:3, :3]
        u, v = k[0, 0] * c[0] / c[2] + k[0, 2], k[1, 1] * c[1] / c[2] + k[1, 2]
        window = view["body"][int(v) - 1 : int(v) + 2, int(u) - 1 : int(u) + 2]
        assert set(window.ravel()) & env.hand_bodies, f"{cam}: hand not at projected pixel ({u:.1f}, {v:.1f})"
        # Rendered depth is z along the optical axis: a ray cast through pixel centres agrees with it.
        import mujoco

        visible_groups = np.array([1, 1, 1, 0, 0, 0], np.uint8)  # the groups MuJoCo renders by default
        for iy, ix in ((32, 32), (50, 10), (50, 54)):  # robot, table, table
            ray = np.array([(ix + 0.5 - k[0, 2]) / k[0, 0], (iy + 0.5 - k[1, 2]) / k[1, 1], 1.0])
            direction = pose[:3, :3] @ ray
            geom = np.zeros(1, np.int32)
            dist = mujoco.mj_ray(env.model, env.data, pose[:3, 3], direction / np.linalg.norm(direction),
                                 visible_groups, 1, -1, geom)  # fmt: skip
            assert abs(dist / np.linalg.norm(ray) - view["depth"][iy, ix]) < 1e-3


def test_projected_object_centre_matches_its_segmentation() -> None:
    """A sideways error in the extrinsics (e.g. one stereo eye instead of the mono camera) shows up here: the
    puck's centre projects onto the horizontal centre of its pixels in both cameras, to a pixel."""
    from robo4d.world.env import WorldEnv

    e = WorldEnv("push-v3", seed=0, image_size=256)
    try:
        e.reset()
        puck = e.model.body("obj").id
        k = e.observe().intrinsics[types.CAM_FRONT].astype(np.float64)
        for cam in (types.CAM_FRONT, types.CAM_WRIST):
            view = e.render(cam, segmentation=True)
            pose = view["extrinsics"].astype(np.float64)
            c = (e.data.xpos[puck] - pose[:3, 3]) @ pose[:3, :3]
            ys, xs = np.nonzero(view["body"] == puck)
            assert xs.size > 20, f"{cam}: puck not in view"
            assert abs(k[0, 0] * c[0] / c[2] + k[0, 2] - (xs.mean() + 0.5)) < 1.0, cam
    finally:
        e.close()


@pytest.fixture(scope="module")
def human_ds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world") / "human"
    Human(out=out, preset="tiny", tasks=("door-close-v3",), episodes=1, max_steps=12, workers=1).run()
    return out


def test_ground_truth_lifts_back_from_depth(human_ds: Path) -> None:
    """Projecting GT points and lifting them with the stored depth reproduces them (median < 1 mm)."""
    ds = Dataset(human_ds)
    ep = ds.read_episode(0)
    cam = types.CAM_EGO
    points, visible = ep[types.gt_points_key(cam)], ep[types.gt_points_visible_key(cam)]
    assert points.shape == (ds.episode_length(0), 16 * 16, 3) and visible[0].mean() > 0.95
    errors = lift_errors(points, visible, ep[types.depth_key(cam)], ep[types.intrinsics_key(cam)])
    assert errors.size > 0.9 * visible.sum()  # nearly every visible point has depth under it
    assert np.median(errors) < 1e-3


def test_human_dataset_has_no_proprio_and_records_its_making(human_ds: Path) -> None:
    ds = Dataset(human_ds)
    poses = ds.read_episode(0)[types.extrinsics_key(types.CAM_EGO)]
    assert np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=-1).min() > 0  # the head camera moves every frame
    assert types.STATE not in ds.features and types.ACTION not in ds.features
    world = ds.robo4d_meta["world"]
    assert world["kind"] == "human" and world["grid"] == 16 and world["tasks"] == {"close the door": "door-close-v3"}


def test_human_embodiment_hides_the_arm_and_keeps_a_skin_coloured_hand() -> None:
    from robo4d.world.env import HIDDEN_GROUP, SKIN_RGBA, WorldEnv

    e = WorldEnv("door-close-v3", seed=0, image_size=32, cameras=(types.CAM_FRONT,), human=True)
    try:
        m = e.model
        arm = [g for g in range(m.ngeom) if m.body(m.geom_bodyid[g]).name.startswith("right_l")]
        hand = [g for g in range(m.ngeom) if m.geom_bodyid[g] in e.hand_bodies]
        assert arm and all(m.geom_group[g] == HIDDEN_GROUP for g in arm)
        assert hand and all(np.allclose(m.geom_rgba[g], SKIN_RGBA) for g in hand)
        view = e.render(types.CAM_FRONT, segmentation=True)
        assert not set(np.unique(view["body"])) & {m.geom_bodyid[g] for g in arm}  # no arm pixel anywhere
    finally:
        e.close()


def test_failed_demos_are_dropped_by_default(tmp_path: Path) -> None:
    """Two steps are too few for the expert: nothing is kept, and that is an error, not an empty dataset."""
    with pytest.raises(RuntimeError, match="no episode kept"):
        generate(
            "robot", tmp_path / "r", task_names=("drawer-open-v3",), episodes=1, seed=0, image_size=32, max_steps=2,
            grid=0, workers=1, keep_failures=False, preset="tiny",
        )  # fmt: skip
    assert not (tmp_path / "r").exists()


def _robot(out: Path, workers: int) -> dict:
    return generate(
        "robot", out, task_names=("reach-v3",), episodes=2, seed=1, image_size=48, max_steps=10, grid=0,
        workers=workers, keep_failures=True, preset="tiny",
    )  # fmt: skip


def test_robot_demos_are_reproducible_whatever_the_worker_count(tmp_path: Path) -> None:
    _robot(tmp_path / "a", workers=1)
    summary = _robot(tmp_path / "b", workers=2)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.parquet"))
    assert files
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    ds = Dataset(tmp_path / "b")
    assert ds.num_episodes == 2 and summary["attempts"] == 2
    ep = ds.read_episode(1)
    assert ep[types.STATE].shape[1:] == (types.STATE_DIM,) and ep[types.ACTION].shape[1:] == (4,)
    assert ds.episode_meta(1)[types.EPISODE_SEED] == tasks.demo_seed(1, 1)
    assert ep[types.image_key(types.CAM_WRIST)].shape[1:] == (48, 48, 3)


def test_robot_demos_with_a_grid_carry_front_ground_truth_tracks(tmp_path: Path) -> None:
    """The oracle tracks of the robot camera (the bench's ground-truth track source): on the first frame the
    visible points sit on the query grid, at the rendered depth."""
    from robo4d.extract.queries import grid_queries
    from robo4d.world.tracks import project

    summary = generate(
        "robot", tmp_path / "r", task_names=("reach-v3",), episodes=1, seed=0, image_size=48, max_steps=6, grid=4,
        workers=1, keep_failures=True, preset="tiny",
    )  # fmt: skip
    ep = Dataset(tmp_path / "r").read_episode(0)
    cam = types.CAM_FRONT
    points, visible = ep[types.gt_points_key(cam)], ep[types.gt_points_visible_key(cam)]
    assert points.shape[1:] == (16, 3) and visible[0].sum() >= 8 and summary["grid"] == 4
    uv = project(points[0][visible[0]], ep[types.intrinsics_key(cam)][0])
    assert np.abs(uv - grid_queries(48, 48, 4)[visible[0]]).max() < 1e-2
    depth = ep[types.depth_key(cam)][0][uv[:, 1].astype(int), uv[:, 0].astype(int)]
    assert np.median(np.abs(depth - points[0][visible[0], 2])) < 5e-3
