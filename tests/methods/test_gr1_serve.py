"""A GR-1 fine-tuned checkpoint through the generic serve and eval paths (no GR-1 code in serve/ or eval/): it
serves an eef_pose chunk of its declared shape and is evaluated in Meta-World with eval_info.json written."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from test_gr1_train import SMALL, write

from robo4d import types
from robo4d.methods.gr1.recipes import gr1_stages
from robo4d.nn.feature_cache import CACHE_DIR_ENV
from robo4d.train.checkpoint import resolve_checkpoint
from robo4d.train.trainer import run_stages


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fine-tune-only GR-1 tiny run, 2 steps on the synthetic robot demos (trained once for this module)."""
    tmp = tmp_path_factory.mktemp("gr1")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_DIR_ENV, str(tmp / "cache"))
        torch.manual_seed(0)
        robot = write(tmp / "robot", (types.CAM_FRONT, types.CAM_WRIST), robot=True)
        tune = {"steps": 2, "batch_size": 4, "log_every": 1, "eval_every": 2, "num_workers": 0, "val_fraction": 0.0}
        stages = gr1_stages("gr1-tiny", human=(), robot=(robot,), pretrained=False, finetune=tune)
        stages = tuple(replace(s, policy=replace(s.policy, **SMALL)) for s in stages)
        run_stages(stages, tmp / "run", progress=False)
    return resolve_checkpoint(tmp / "run" / "finetune")


def test_serve(checkpoint: Path) -> None:
    from robo4d.serve.client import PolicyClient
    from robo4d.serve.commands import ServeCommand
    from robo4d.serve.server import PolicyServer

    spec, make_policy, config = ServeCommand(checkpoint=checkpoint, port=0).plan()
    io = spec.io
    assert io.action_kind == types.ACTION_EEF_POSE and io.cameras == (types.CAM_FRONT, types.CAM_WRIST)
    h, w = io.image_size
    frame = np.full((h, w, 3), 128, np.uint8)
    obs = types.Observation(images={cam: frame for cam in io.cameras}, task="reach the goal",
                            state=np.array([0, 0, 0.2, 1, 0, 0, 0, 1], np.float32))  # fmt: skip
    with PolicyServer(make_policy, spec, config).start_in_thread() as server:
        with PolicyClient(server.url) as client:
            chunk = client.predict_action_chunk(obs)
            client.reset()
            again = client.predict_action_chunk(obs)
    assert chunk.kind == types.ACTION_EEF_POSE and chunk.actions.shape == (io.chunk, 8)
    assert np.isfinite(chunk.actions).all()
    np.testing.assert_allclose(again.actions, chunk.actions, atol=1e-5)  # reset clears the history


def test_eval_in_meta_world(checkpoint: Path, tmp_path: Path) -> None:
    from robo4d.eval.commands import EvalCommand

    out = tmp_path / "eval"
    EvalCommand(checkpoint=checkpoint, tasks=("reach-v3",), episodes=1, max_steps=4, workers=1, videos_per_task=0,
                out=out).run()  # fmt: skip
    info = json.loads((out / "eval_info.json").read_text())
    assert [task["task"] for task in info["per_task"]] == ["reach-v3"]
    metrics = info["per_task"][0]["metrics"]
    assert 0.0 <= metrics["pc_success"] <= 100.0
    assert {"pc_success", "pc_success_mean", "eval_s"} <= set(info["aggregated"])


def test_serve_and_eval_import_no_gr1_code() -> None:
    """The two tests above pass through generic code only: nothing in eval/ or serve/ imports the GR-1 package."""
    import robo4d

    root = Path(robo4d.__file__).parent
    for path in (*root.joinpath("eval").rglob("*.py"), *root.joinpath("serve").rglob("*.py")):
        text = path.read_text()
        assert "methods.gr1" not in text and "methods import gr1" not in text, path
