"""Moved to mlpot.deploy.skin_neighbors (kept here for one release)."""
from mlpot.deploy.skin_neighbors import *  # noqa: F401,F403
