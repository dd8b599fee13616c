"""Moved to mlpot.deploy.metadata (kept here for one release)."""
from mlpot.deploy.metadata import *  # noqa: F401,F403
