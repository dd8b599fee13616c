"""Moved to mlpot.model.statistics (kept here for one release)."""
from mlpot.model.statistics import *  # noqa: F401,F403
