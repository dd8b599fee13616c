"""Reference calculators for tests/test_learn.py, importable as "learn_references:NAME"
(learn.reference) from a subprocess with tests/ on PYTHONPATH."""
import os
import signal

from ase.calculators.emt import EMT


class CountingEMT(EMT):
    """EMT that counts its calculations; fails on every `fail_every`-th, or kills its own process
    with SIGKILL on the `kill_at`-th (as kill -9 would, in the middle of labelling)."""

    def __init__(self, fail_every=0, kill_at=0, **kwargs):
        super().__init__(**kwargs)
        self.calls, self.fail_every, self.kill_at = 0, fail_every, kill_at

    def calculate(self, *args, **kwargs):
        self.calls += 1
        if self.kill_at and self.calls == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.fail_every and self.calls % self.fail_every == 0:
            raise RuntimeError(f"SCF did not converge (test failure on call {self.calls})")
        super().calculate(*args, **kwargs)


def emt():
    return CountingEMT()


def killer():
    return CountingEMT(kill_at=int(os.environ.get("MLPOT_TEST_KILL_AT", "3")))
