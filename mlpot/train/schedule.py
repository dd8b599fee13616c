"""Schedules tied to the training budget: the fraction of it used so far, a cosine learning
rate over it, and the loss weights of the two stages (MACE's "stage two": from a fraction of
the budget on, the energy weighs more, e.g. 1000 vs 100 for the forces), reached along a ramp.

The budget is training.max_epochs (in optimizer steps) or training.max_time (wall-clock
seconds of training), whichever runs out first. Everything here is a pure function of the progress,
so a resumed run continues the same schedule.
"""
from __future__ import annotations

import math
from typing import Optional


def budget_fraction(elapsed_s: float, step: int, max_time: Optional[float], max_epochs: int,
                    steps_per_epoch: int) -> float:
    """Fraction of the training budget used, in [0, 1]: step / (max_epochs · steps_per_epoch),
    or elapsed_s / max_time if a time budget is set and that is larger (the limit that ends the
    run first)."""
    total = max_epochs * max(steps_per_epoch, 1)
    fraction = step / total if total > 0 else 1.0
    if max_time is not None:
        fraction = max(fraction, elapsed_s / max_time)
    return min(max(fraction, 0.0), 1.0)


def cosine_lr(lr: float, min_lr: float, fraction: float) -> float:
    """min_lr + (lr − min_lr) · (1 + cos(π · fraction)) / 2: lr at the start, min_lr at the end."""
    fraction = min(max(fraction, 0.0), 1.0)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * fraction))


def stage_of(fraction: float, stage_two_start: Optional[float]) -> int:
    """1 before stage_two_start (a fraction of the budget), 2 from then on (1 when None)."""
    return 2 if stage_two_start is not None and fraction >= stage_two_start else 1


def ramp_weights(stage_one: dict, stage_two: dict, fraction: float, start: Optional[float],
                 ramp: float, scale: float = 1.0) -> dict:
    """Loss weights at `fraction` of the budget: stage_one's before `start`; from `start` they
    move to scale · stage_two's over `ramp` (a share of the budget; 0 = a step), geometrically
    where both ends are positive (each budget step multiplies a weight by the same factor) and
    linearly where one is 0. `scale` (set at the switch) keeps the loss at the scale the optimizer
    knows: the ratio of stage one's loss to stage two's on the same errors."""
    if start is None or fraction < start:
        return dict(stage_one)
    t = 1.0 if ramp <= 0 else min(1.0, (fraction - start) / ramp)
    out = {}
    for key, a in stage_one.items():
        b = scale * stage_two.get(key, a)
        out[key] = a * (b / a) ** t if a > 0 and b > 0 else a + (b - a) * t
    return out
