"""Moved to mlpot.model.config (kept here for one release)."""
from mlpot.model.config import *  # noqa: F401,F403
