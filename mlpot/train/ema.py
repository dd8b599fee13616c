"""Exponential moving average of model weights (decay 0.99 per optimizer step by default).

    ema = EMA(model, decay=0.99)
    ...optimizer.step(); ema.update(model)
    ema.model(batch)               # a separate copy with the averaged weights, for validation

Parameters are averaged: p_ema <- d * p_ema + (1 - d) * p with d = min(decay, (1 + t) / (10 + t))
at optimizer step t, so the average follows the model closely during the first steps
(the warm-up of TensorFlow's ExponentialMovingAverage) and settles to `decay`. Buffers (reference
energies, scale, descriptor standardisation) are copied as they are. decay=0 makes the
copy follow the model exactly.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float = 0.99):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        """Move the average one step towards the weights of `model`; `step` (0-based count of
        earlier updates) enables the warm-up, None uses `decay` as it is."""
        decay = self.decay if step is None else min(self.decay, (1.0 + step) / (10.0 + step))
        averages = list(self.model.parameters())
        torch._foreach_lerp_(averages, [p.detach() for p in model.parameters()], 1.0 - decay)
        for avg, b in zip(self.model.buffers(), model.buffers()):
            avg.copy_(b)

    @torch.no_grad()
    def reset(self, model: nn.Module) -> None:
        """Make the average equal to `model` (e.g. after fitting statistics)."""
        self.model.load_state_dict(model.state_dict())

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
