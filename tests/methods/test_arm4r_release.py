"""Import of the authors' released checkpoints: key names and shapes as the release writes them, a pickled
foreign config object inside, and strict errors for anything that does not fit."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch

from robo4d.methods.arm4r import ARM4RConfig, ARM4RPolicy, preset
from robo4d.methods.arm4r.release import load_release_checkpoint, read_release_state_dict

SIDE_EFFECTS: list[str] = []


def _side_effect(tag: str) -> str:
    SIDE_EFFECTS.append(tag)
    return tag


class Payload:
    """Unpickling this with a plain unpickler calls _side_effect: the restricted one must not."""

    def __reduce__(self):
        return (_side_effect, ("unpickled code ran",))


@dataclass
class ForeignExperimentConfig:  # stands in for the release's pickled `args` (an ExperimentConfig)
    dataset_json: str
    payload: Payload
    output_dir: Path


def release_shapes(cfg: ARM4RConfig) -> dict[str, tuple[int, ...]]:
    """Key names and shapes exactly as the release's ARM4R state_dict() lays them out (LLaMA trunk, timm Mlp,
    per-camera AttentionPool, MLPHead with `.mlp`), for a config whose image width equals the pool width."""
    d, hidden, c = cfg.dim, cfg.trunk.ffn_hidden, cfg.image_dim
    p, a, k, slot = cfg.input_dim, cfg.action_dim, cfg.horizon, cfg.dim // len(cfg.cameras)
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(cfg.n_layers):
        pre = f"llama.layers.{i}."
        shapes |= {f"{pre}attention.w{w}.weight": (d, d) for w in "qkvo"}
        shapes |= {f"{pre}feed_forward.w1.weight": (hidden, d), f"{pre}feed_forward.w2.weight": (d, hidden)}
        shapes |= {f"{pre}feed_forward.w3.weight": (hidden, d)}
        shapes |= {f"{pre}attention_norm.weight": (d,), f"{pre}ffn_norm.weight": (d,)}
    shapes["llama.norm.weight"] = (d,)

    def mlp(name: str, n_in: int, n_hidden: int, n_out: int) -> None:
        shapes.update({f"{name}.fc1.weight": (n_hidden, n_in), f"{name}.fc1.bias": (n_hidden,)})
        shapes.update({f"{name}.fc2.weight": (n_out, n_hidden), f"{name}.fc2.bias": (n_out,)})

    mlp("arm4r_text_encoder", 512, 512, d)
    mlp("arm4r_proprio_encoder", p, p, c)
    for j in range(len(cfg.cameras)):
        pre = f"arm4r_attn_pooling.{j}."
        shapes |= {f"{pre}latent": (1, 1, c), f"{pre}q.weight": (c, c), f"{pre}q.bias": (c,)}
        shapes |= {f"{pre}kv.weight": (2 * c, c), f"{pre}kv.bias": (2 * c,)}
        shapes |= {f"{pre}proj.weight": (slot, c), f"{pre}proj.bias": (slot,)}
        shapes |= {f"{pre}norm.weight": (slot,), f"{pre}norm.bias": (slot,)}
        mlp(f"{pre}mlp", slot, 4 * slot, slot)
    shapes |= {"arm4r_vision_norm.weight": (c,), "arm4r_vision_norm.bias": (c,)}
    mlp("arm4r_action_encoder", a, a, d)
    mlp("arm4r_action_decoder.mlp", d, 128, a * k)
    return shapes


@pytest.fixture
def small_release_config() -> ARM4RConfig:
    # Release layout: CLIP text (512), image width == pool width (no projection).
    return replace(preset("arm4r-tiny", 1), text_dim=512, image_dim=128, num_points=16, n_layers=2)


def save_release_file(path: Path, state: dict[str, torch.Tensor]) -> None:
    args = ForeignExperimentConfig(dataset_json="config/epic.json", payload=Payload(), output_dir=Path("out"))
    torch.save({"model": OrderedDict(state), "optimizer": {"state": {}}, "epoch": 5, "args": args}, path)


def test_release_checkpoint_loads_without_running_pickled_code(tmp_path: Path, small_release_config) -> None:
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s, generator=g) for k, s in release_shapes(small_release_config).items()}
    path = tmp_path / "pretrained_epic.pth"
    save_release_file(path, state)
    SIDE_EFFECTS.clear()
    with pytest.raises(Exception):  # noqa: B017  (torch's safe loader refuses the foreign config object)
        torch.load(path, weights_only=True)

    policy = ARM4RPolicy(small_release_config)
    load_release_checkpoint(policy, path)
    assert SIDE_EFFECTS == []
    model = policy.model
    w2 = state["llama.layers.1.feed_forward.w2.weight"]
    torch.testing.assert_close(model.trunk.layers[1].feed_forward.w2.weight, w2)
    torch.testing.assert_close(model.pools[1].mlp.fc1.bias, state["arm4r_attn_pooling.1.mlp.fc1.bias"])
    torch.testing.assert_close(model.action_decoder.fc2.weight, state["arm4r_action_decoder.mlp.fc2.weight"])
    torch.testing.assert_close(model.text_proj.fc1.weight, state["arm4r_text_encoder.fc1.weight"])


def test_release_keys_that_do_not_fit_are_errors(tmp_path: Path, small_release_config) -> None:
    state = {k: torch.zeros(s) for k, s in release_shapes(small_release_config).items()}
    policy = ARM4RPolicy(small_release_config)
    cases = {
        "outside the ARM4R release layout": {**state, "arm4r_camera_pos_emb": torch.zeros(2, 1, 128)},
        "missing": {k: v for k, v in state.items() if k != "llama.norm.weight"},
        "shape mismatch": {**state, "arm4r_action_encoder.fc1.weight": torch.zeros(3, 3)},
    }
    for message, bad in cases.items():
        path = tmp_path / "bad.pth"
        save_release_file(path, bad)
        with pytest.raises(ValueError, match=message):
            load_release_checkpoint(policy, path)
    # Older files spell the trunk prefix "llma."; the release's own loader renamed it, so does robo4d.
    path = tmp_path / "old.pth"
    save_release_file(path, {k.replace("llama.", "llma."): v for k, v in state.items()})
    load_release_checkpoint(policy, path)
    assert set(read_release_state_dict(path)) == {k.replace("llama.", "llma.") for k in state}


def test_control_release_checkpoints_need_the_release_rotation_layout(tmp_path: Path) -> None:
    control = replace(preset("arm4r-tiny", 3), text_dim=512, image_dim=128, n_layers=2)
    assert control.rot6d == "rows"  # the default is the release's layout
    path = tmp_path / "ft_reach.pth"
    save_release_file(path, {k: torch.zeros(s) for k, s in release_shapes(control).items()})
    with pytest.raises(ValueError, match="store 6-D rotations as 'rows'.*rot6d is 'columns'"):
        load_release_checkpoint(ARM4RPolicy(replace(control, rot6d="columns")), path)
    load_release_checkpoint(ARM4RPolicy(control), path)
