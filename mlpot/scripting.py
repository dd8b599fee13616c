"""Moved to mlpot.sim.scripting (kept here for one release)."""
from mlpot.sim.scripting import *  # noqa: F401,F403
