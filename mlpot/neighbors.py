"""Moved to mlpot.data.neighbors (kept here for one release)."""
from mlpot.data.neighbors import *  # noqa: F401,F403
