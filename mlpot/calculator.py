"""Moved to mlpot.deploy.calculator (kept here for one release)."""
from mlpot.deploy.calculator import *  # noqa: F401,F403
