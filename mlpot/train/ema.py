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
        self._pairs = None    # see _tensors_of

    def _tensors_of(self, model: nn.Module):
        """The parameters and buffers of `model` and of the average, listed once per model
        (walking the module tree costs ~0.5 ms, a noticeable share of a training step). Parameter
        objects survive .to() and load_state_dict; buffers may be replaced by .to(), so the lists
        are made again when a buffer is not the one listed."""
        if self._pairs is None or self._pairs[0] is not model or any(
                m._buffers.get(name) is not b for m, name, b in self._pairs[5]):
            named = [(module, name, b) for root in (model, self.model) for module in root.modules()
                     for name, b in module._buffers.items() if b is not None]
            self._pairs = (model, list(model.parameters()), list(model.buffers()),
                           list(self.model.parameters()), list(self.model.buffers()), named)
        return self._pairs[1:5]

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        """Move the average one step towards the weights of `model`; `step` (0-based count of
        earlier updates) enables the warm-up, None uses `decay` as it is."""
        decay = self.decay if step is None else min(self.decay, (1.0 + step) / (10.0 + step))
        params, buffers, averages, average_buffers = self._tensors_of(model)
        torch._foreach_lerp_(averages, params, 1.0 - decay)
        if buffers:
            torch._foreach_copy_(average_buffers, buffers)

    @torch.no_grad()
    def reset(self, model: nn.Module) -> None:
        """Make the average equal to `model` (e.g. after fitting statistics)."""
        self.model.load_state_dict(model.state_dict())
        self._pairs = None

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
