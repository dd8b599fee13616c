"""Moved to mlpot.kernels.written_out (kept here for one release)."""
from mlpot.kernels.written_out import *  # noqa: F401,F403
