"""Moved to mlpot.kernels.stacked (kept here for one release)."""
from mlpot.kernels.stacked import *  # noqa: F401,F403
