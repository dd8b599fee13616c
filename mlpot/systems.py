"""Moved to mlpot.sim.structures (kept here for one release)."""
from mlpot.sim.structures import *  # noqa: F401,F403
