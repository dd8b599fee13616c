"""The exponential moving average of weights (mlpot.train.ema): the update formula, buffers
copied, and the listed tensors staying right when the model is converted or reloaded."""
import torch
from torch import nn

from mlpot.train.ema import EMA


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(3, 2)
        self.register_buffer("scale", torch.tensor([1.0]))


def test_update_moves_the_average_by_the_decay_and_copies_buffers():
    model = Tiny()
    ema = EMA(model, decay=0.9)
    before = [p.detach().clone() for p in ema.model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model.scale.fill_(3.0)
    ema.update(model)                                   # no warm-up: d = 0.9
    for avg, old, new in zip(ema.model.parameters(), before, model.parameters()):
        torch.testing.assert_close(avg, 0.9 * old + 0.1 * new)
    assert float(ema.model.scale) == 3.0
    ema.update(model, step=0)                           # warm-up: d = min(0.9, 1/10)
    for avg, new in zip(ema.model.parameters(), model.parameters()):
        assert float((avg - new).abs().max()) < 0.9 * 0.1 + 1e-6


def test_update_after_conversion_and_reload_uses_the_current_tensors():
    model = Tiny()
    ema = EMA(model, decay=0.5)
    ema.update(model)                                   # lists the tensors
    model.double()                                      # replaces buffers, swaps parameter data
    ema.model.double()
    with torch.no_grad():
        model.scale.fill_(5.0)
        model.layer.weight.fill_(2.0)
    ema.update(model)
    assert float(ema.model.scale) == 5.0 and ema.model.scale.dtype == torch.float64
    ema.reset(model)
    torch.testing.assert_close(ema.model.layer.weight, model.layer.weight)
    other = Tiny().double()                             # a different model object
    ema.update(other)
    torch.testing.assert_close(ema.model.layer.weight, 0.5 * model.layer.weight + 0.5 * other.layer.weight)
