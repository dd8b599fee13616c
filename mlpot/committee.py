"""Moved to mlpot.deploy.committee (kept here for one release)."""
from mlpot.deploy.committee import *  # noqa: F401,F403
