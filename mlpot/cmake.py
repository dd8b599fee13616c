"""Moved to mlpot.lammps.cmake (kept here for one release)."""
from mlpot.lammps.cmake import *  # noqa: F401,F403
