"""Moved to mlpot.deploy.export (kept here for one release)."""
from mlpot.deploy.export import *  # noqa: F401,F403
