"""Parameter groups and the learning-rate schedule."""

from __future__ import annotations

import math

import pytest
from torch import nn

from robo4d.train.optim import OptimConfig, build_optimizer, build_scheduler, lr_factor


def test_weight_decay_only_on_matrices_and_frozen_params_excluded() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Embedding(5, 8), nn.Linear(8, 2))
    model[3].requires_grad_(False)
    opt = build_optimizer(model, OptimConfig(weight_decay=0.01))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[2].weight)}
    assert {id(p) for p in no_decay["params"]} == {id(model[0].bias), id(model[1].weight), id(model[1].bias)}
    assert opt.defaults["betas"] == (0.9, 0.95)


def test_all_frozen_is_an_error() -> None:
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(nn.Linear(2, 2).requires_grad_(False), OptimConfig())


def test_schedule_warmup_then_half_cosine_to_zero() -> None:
    total, cfg = 100, OptimConfig(lr=1.0, warmup_fraction=0.1)
    assert [lr_factor(s, total, 0.1) for s in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert lr_factor(9, total, 0.1) == 1.0  # last warmup update at the peak
    assert lr_factor(10, total, 0.1) == 1.0  # cosine starts at the peak
    assert lr_factor(55, total, 0.1) == pytest.approx(0.5)  # half way through the cosine
    assert lr_factor(total, total, 0.1) == 0.0
    assert lr_factor(total - 1, total, 0.1) == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 90)))
    opt = build_optimizer(nn.Linear(2, 2), cfg)
    sched = build_scheduler(opt, cfg, total)
    lrs = []
    for _ in range(total):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and max(lrs) == 1.0
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))  # monotone decay after warmup
    assert sched.get_last_lr()[0] == 0.0


@pytest.mark.parametrize(
    ("field", "value"), [("lr", 0.0), ("betas", (0.9, 1.0)), ("warmup_fraction", 1.0), ("grad_clip", 0.0)]
)
def test_invalid_optim_config_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"OptimConfig.{field}"):
        OptimConfig(**{field: value})
