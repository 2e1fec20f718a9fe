"""Weight maps: full coverage by exactly one rule, strict loading with every offending name listed."""

from __future__ import annotations

import pytest
import torch

from robo4d.train.weight_map import (
    DROP,
    INIT,
    LOAD,
    WeightMap,
    WeightMapError,
    WeightRule,
    apply_weight_map,
    keep_except,
    load_all,
    resolve,
)

NAMES = ["trunk.0.weight", "trunk.0.bias", "decoder.weight", "decoder.bias", "state_mean"]


def _state(shapes: dict[str, tuple[int, ...]], fill: float) -> dict[str, torch.Tensor]:
    return {n: torch.full(s, fill) for n, s in shapes.items()}


def test_every_name_resolved_by_exactly_one_rule() -> None:
    wm = WeightMap(rules=(WeightRule(pattern="trunk.*", action=LOAD), WeightRule(pattern="decoder.*", action=INIT),
                          WeightRule(pattern="state_mean", action=INIT)))  # fmt: skip
    assert resolve(wm, NAMES) == {
        "trunk.0.weight": LOAD, "trunk.0.bias": LOAD, "decoder.weight": INIT, "decoder.bias": INIT, "state_mean": INIT,
    }  # fmt: skip


def test_uncovered_ambiguous_and_unused_rules_are_listed() -> None:
    wm = WeightMap(rules=(WeightRule(pattern="trunk.*", action=LOAD), WeightRule(pattern="*.bias", action=INIT),
                          WeightRule(pattern="encoder.*", action=INIT)))  # fmt: skip
    with pytest.raises(WeightMapError) as e:
        resolve(wm, NAMES)
    msg = str(e.value)
    assert "not covered by any rule: decoder.weight, state_mean" in msg
    assert "trunk.0.bias (trunk.* | *.bias)" in msg
    assert "rule(s) matching no tensor: ['encoder.*']" in msg


def test_strict_load_lists_mismatched_and_missing_keys() -> None:
    target = _state({"a.w": (2, 3), "b.w": (4,), "c.w": (1,)}, 0.0)
    source = _state({"a.w": (2, 2), "b.w": (5,)}, 1.0)
    with pytest.raises(WeightMapError) as e:
        apply_weight_map(target, source, load_all(), source_name="ckpt/model.safetensors")
    msg = str(e.value)
    assert "ckpt/model.safetensors" in msg
    assert "missing from the checkpoint: c.w" in msg
    assert "a.w: checkpoint (2, 2) vs policy (2, 3)" in msg and "b.w: checkpoint (5,) vs policy (4,)" in msg


def test_init_rules_keep_fresh_values_and_may_drop_source_only_tensors() -> None:
    target = _state({"trunk.w": (2,), "action_decoder.w": (3,)}, 0.0)
    source = _state({"trunk.w": (2,), "action_decoder.w": (6,), "action_decoder.extra": (1,)}, 1.0)
    out = apply_weight_map(target, source, keep_except(("trunk",), ("action_decoder",)), source_name="s")
    assert out["trunk.w"].eq(1).all() and out["action_decoder.w"].eq(0).all() and set(out) == set(target)
    with pytest.raises(WeightMapError, match=r"not in the policy .*: extra"):
        apply_weight_map(_state({"w": (1,)}, 0), _state({"w": (1,), "extra": (1,)}, 1), load_all(), source_name="s")


def test_rule_validation() -> None:
    with pytest.raises(ValueError, match="WeightRule.action"):
        WeightRule(pattern="*", action="keep")
    with pytest.raises(ValueError, match="appear more than once"):
        WeightMap(rules=(WeightRule(pattern="*", action=LOAD), WeightRule(pattern="*", action=INIT)))


def test_optional_init_rules_may_match_nothing() -> None:
    wm = keep_except(("trunk",), ("decoder",), optional_init=("normalizer",))
    assert resolve(wm, NAMES[:4]) == {n: (LOAD if n.startswith("trunk") else INIT) for n in NAMES[:4]}
    assert resolve(wm, [*NAMES[:4], "normalizer.mean"])["normalizer.mean"] == INIT
    with pytest.raises(ValueError, match="only 'init' rules may be optional"):
        WeightRule(pattern="x.*", action=LOAD, optional=True)


def test_drop_rules_name_checkpoint_tensors_the_policy_lacks() -> None:
    target = _state({"trunk.w": (2,), "head.w": (1,)}, 0.0)
    source = _state({"trunk.w": (2,), "decoder.w": (3,), "decoder.b": (3,)}, 1.0)
    rules = (WeightRule(pattern="trunk.*", action=LOAD), WeightRule(pattern="head.*", action=INIT))
    drop = WeightRule(pattern="decoder.*", action=DROP)
    out = apply_weight_map(target, source, WeightMap(rules=(*rules, drop)), source_name="s")
    assert set(out) == {"trunk.w", "head.w"} and out["trunk.w"].eq(1).all() and out["head.w"].eq(0).all()
    with pytest.raises(WeightMapError, match=r"not in the policy.*decoder\.b, decoder\.w"):
        apply_weight_map(target, source, WeightMap(rules=rules), source_name="s")
    # A drop rule must drop something, and never a tensor the new policy has.
    idle = WeightRule(pattern="encoder.*", action=DROP)
    with pytest.raises(
        WeightMapError, match=r"'drop' rule\(s\) matching no tensor of the checkpoint: \['encoder\.\*'\]"
    ):
        apply_weight_map(target, source, WeightMap(rules=(*rules, drop, idle)), source_name="s")
    with pytest.raises(WeightMapError, match=r"head\.w \(a 'drop' rule, head\.\*, matches a tensor the policy has\)"):
        resolve(WeightMap(rules=(rules[0], WeightRule(pattern="head.*", action=DROP))), ["trunk.w", "head.w"])
