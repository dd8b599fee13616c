"""Moved to mlpot.model.heads (kept here for one release)."""
from mlpot.model.heads import *  # noqa: F401,F403
