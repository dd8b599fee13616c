"""Which epoch a run delivers as best.ckpt once stage two has begun: a later epoch replaces the
delivered one only if it is better on the rule the config names (training.stage_two_select),
measured on validation errors that mean the same in both stages (the validation loss does not:
its weights change at the switch).

    better_than(candidate, delivered, "energy_and_forces")

candidate and delivered are dicts with "energy" (MAE, meV/atom), "forces" (MAE, meV/Å) and
"loss" (the validation loss with stage one's weights); a missing or None value is unknown.
"""
from __future__ import annotations

import math

RULES = ("energy_and_forces", "forces", "energy", "loss")


def _number(v) -> float:
    """v as a float; an unknown (None) or non-finite value as inf (never better)."""
    return math.inf if v is None or not math.isfinite(v) else float(v)


def better_than(candidate: dict, delivered: dict | None, rule: str) -> bool:
    """True if `candidate` should replace `delivered` under `rule`: energy_and_forces (neither
    worse, one strictly better; a quantity the data lacks counts as equal), forces, energy or
    loss (strictly lower). Anything beats no delivered epoch."""
    if rule not in RULES:
        raise ValueError(f"unknown selection rule {rule!r}; choose from {', '.join(RULES)}")
    if delivered is None:
        return True
    if rule != "energy_and_forces":
        return _number(candidate.get(rule)) < _number(delivered.get(rule))
    pairs = [(_number(candidate.get(k)), _number(delivered.get(k))) for k in ("energy", "forces")
             if candidate.get(k) is not None or delivered.get(k) is not None]
    if not pairs:
        return _number(candidate.get("loss")) < _number(delivered.get("loss"))
    return all(c <= d for c, d in pairs) and any(c < d for c, d in pairs)
