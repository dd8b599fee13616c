"""Moved to mlpot.sim.labelling (kept here for one release)."""
from mlpot.sim.labelling import *  # noqa: F401,F403
