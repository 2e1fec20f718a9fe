"""Explicit weight maps between stages: which saved tensors a new stage keeps and which it re-initialises.

A map is a tuple of rules, each a glob pattern over state-dict names (`fnmatch`, e.g. "trunk.*") and an
action: "load" copies the tensor from the source checkpoint, "init" keeps the freshly built value (random
init, or normalisation stats just set from the new dataset), "drop" names checkpoint tensors the new policy
does not have (e.g. a decoder the next stage leaves out). Every saved tensor of the new policy must match
exactly one load/init rule, every rule must match something (a drop rule: a checkpoint tensor the policy
lacks), so a renamed module can never be silently skipped; only an "init" rule marked `optional` may match
nothing (a module that exists for some data only, e.g. a joint-space normaliser).
Loading is strict: missing source tensors and shape mismatches are errors listing every offending name.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import torch

LOAD = "load"
INIT = "init"
DROP = "drop"
_ACTIONS = (LOAD, INIT, DROP)


@dataclass(frozen=True, kw_only=True)
class WeightRule:
    """One line of a weight map."""

    pattern: str  # fnmatch glob over state-dict names, e.g. "trunk.*" or "*" (everything)
    action: str  # "load" (copy from the checkpoint), "init" (keep the freshly built value), "drop" (see above)
    optional: bool = False  # "init" only: the rule may match no tensor (a module some policies lack)

    def __post_init__(self) -> None:
        if not self.pattern:
            raise ValueError("WeightRule.pattern must not be empty")
        if self.action not in _ACTIONS:
            raise ValueError(f"WeightRule.action must be one of {_ACTIONS}, got {self.action!r} ({self.pattern!r})")
        if self.optional and self.action != INIT:
            raise ValueError(f"WeightRule {self.pattern!r}: only 'init' rules may be optional (a load must load)")


@dataclass(frozen=True, kw_only=True)
class WeightMap:
    """What a stage takes from its `init_from` checkpoint."""

    rules: tuple[WeightRule, ...]  # each saved tensor matches exactly one rule

    def __post_init__(self) -> None:
        if not self.rules:
            raise ValueError("WeightMap.rules must not be empty (use load_all() to keep everything)")
        patterns = [r.pattern for r in self.rules]
        dupes = sorted({p for p in patterns if patterns.count(p) > 1})
        if dupes:
            raise ValueError(f"WeightMap.rules: pattern(s) {dupes} appear more than once")


def load_all() -> WeightMap:
    """Keep everything (e.g. stage 1 -> 2: same objective on new video)."""
    return WeightMap(rules=(WeightRule(pattern="*", action=LOAD),))


def keep_except(load: tuple[str, ...], init: tuple[str, ...], optional_init: tuple[str, ...] = ()) -> WeightMap:
    """A map from explicit module prefixes: `load` ones are copied, `init` ones re-initialised, and
    `optional_init` ones re-initialised where the policy has them."""
    rules = [WeightRule(pattern=f"{p}.*", action=LOAD) for p in load]
    rules += [WeightRule(pattern=f"{p}.*", action=INIT) for p in init]
    rules += [WeightRule(pattern=f"{p}.*", action=INIT, optional=True) for p in optional_init]
    return WeightMap(rules=tuple(rules))


class WeightMapError(ValueError):
    """The weight map does not fit the policy or the checkpoint; the message lists every offending name."""


def _list(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def resolve(weight_map: WeightMap, names: list[str]) -> dict[str, str]:
    """name -> action for every name; raises if a name matches no rule or several, or a rule matches nothing."""
    actions: dict[str, str] = {}
    uncovered, ambiguous = [], []
    used = set()
    drops = [r.pattern for r in weight_map.rules if r.action == DROP]
    kept = [r for r in weight_map.rules if r.action != DROP]
    for name in names:
        dropped = [p for p in drops if fnmatch.fnmatchcase(name, p)]
        if dropped:
            ambiguous.append(f"{name} (a 'drop' rule, {' | '.join(dropped)}, matches a tensor the policy has)")
        hits = [r for r in kept if fnmatch.fnmatchcase(name, r.pattern)]
        used.update(r.pattern for r in hits)
        if not hits:
            uncovered.append(name)
        elif len(hits) > 1:
            ambiguous.append(f"{name} ({' | '.join(r.pattern for r in hits)})")
        else:
            actions[name] = hits[0].action
    problems = []
    if uncovered:
        problems.append(f"not covered by any rule: {_list(uncovered)}")
    if ambiguous:
        problems.append(f"covered by more than one rule: {_list(ambiguous)}")
    unused = [r.pattern for r in kept if r.pattern not in used and not r.optional]
    if unused:
        problems.append(f"rule(s) matching no tensor: {unused}")
    if problems:
        raise WeightMapError("weight map does not fit the policy's tensors: " + "; ".join(problems))
    return actions


def apply_weight_map(
    target: dict[str, torch.Tensor], source: dict[str, torch.Tensor], weight_map: WeightMap, *, source_name: str
) -> dict[str, torch.Tensor]:
    """The state to load into the new policy: `target` (its freshly built saved tensors) with the "load"
    entries replaced by `source` tensors. Source tensors with no counterpart are an error unless a "drop" (or
    an "init") rule names them: the map then says explicitly that they are left behind. A "drop" rule that
    matches no checkpoint tensor is an error too."""
    actions = resolve(weight_map, sorted(target))
    missing = sorted(n for n, a in actions.items() if a == LOAD and n not in source)
    mismatched = sorted(
        f"{n}: checkpoint {tuple(source[n].shape)} vs policy {tuple(target[n].shape)}"
        for n, a in actions.items()
        if a == LOAD and n in source and source[n].shape != target[n].shape
    )
    dropped = [n for n in source if n not in target]
    unexpected = sorted(
        n
        for n in dropped
        if not any(fnmatch.fnmatchcase(n, r.pattern) and r.action in (INIT, DROP) for r in weight_map.rules)
    )
    problems = []
    idle = [r.pattern for r in weight_map.rules if r.action == DROP and not fnmatch.filter(dropped, r.pattern)]
    if idle:
        problems.append(f"'drop' rule(s) matching no tensor of the checkpoint: {idle}")
    if missing:
        problems.append(f"missing from the checkpoint: {_list(missing)}")
    if mismatched:
        problems.append(f"shape mismatch: {_list(mismatched)}")
    if unexpected:
        problems.append(
            f"in the checkpoint but not in the policy (add an 'init' rule to drop them): {_list(unexpected)}"
        )
    if problems:
        raise WeightMapError(f"cannot load {source_name}: " + "; ".join(problems))
    return {n: (source[n] if a == LOAD else target[n]) for n, a in actions.items()}
