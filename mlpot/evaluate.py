"""Moved to mlpot.train.evaluate (kept here for one release)."""
from mlpot.train.evaluate import *  # noqa: F401,F403
