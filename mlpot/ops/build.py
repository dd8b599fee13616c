"""Compile mlpot's C++ operators (mlpot/ops/csrc) into one shared library with the system C++
compiler against the installed torch, into a cache keyed by the torch version, the compiler
flags, the CPU and a hash of the sources (a build takes ~30-60 s, once)."""
from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

LIBRARY_NAME = "libmlpot_ops.so"
SOURCE_DIR = Path(__file__).resolve().parent / "csrc"
OPTIMIZE = ["-O3", "-march=native", "-fopenmp"]
# per source file: exp/log vectorise (glibc libmvec) only under -ffast-math; vector_math.cpp
# holds nothing else and handles no infinities or NaNs by design
FILE_FLAGS = {"vector_math.cpp": ["-ffast-math"]}


def sources() -> list[Path]:
    return sorted(SOURCE_DIR.glob("*.cpp"))


def cache_root() -> Path:
    """$MLPOT_CACHE_DIR/ops, else $XDG_CACHE_HOME/mlpot/ops (~/.cache)."""
    if os.environ.get("MLPOT_CACHE_DIR"):
        return Path(os.environ["MLPOT_CACHE_DIR"]) / "ops"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlpot" / "ops"


def cpu_signature() -> str:
    """The CPU model and flags (-march=native code is only valid on the same kind of CPU)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine()
    wanted = [line for line in lines if line.startswith(("model name", "flags"))][:2]
    return platform.machine() + "\n".join(wanted)


def compile_commands(compiler: str, out: Path) -> list[list[str]]:
    """One command per source (to an object file beside `out`), then the link."""
    from torch.utils import cpp_extension  # lazy: slow (~0.25 s, loads setuptools); needed only to compile

    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    common = [compiler, "-c", "-fPIC", "-std=c++20", f"-D_GLIBCXX_USE_CXX11_ABI={abi}", *OPTIMIZE,
              *[f"-I{p}" for p in cpp_extension.include_paths()]]
    objects = [out.parent / (src.stem + ".o") for src in sources()]
    commands = [common + FILE_FLAGS.get(src.name, []) + [str(src), "-o", str(obj)]
                for src, obj in zip(sources(), objects)]
    lib_dirs = cpp_extension.library_paths()
    commands.append([compiler, "-shared", "-fopenmp", *map(str, objects), "-o", str(out)]
                    + [f"-L{p}" for p in lib_dirs] + [f"-Wl,-rpath,{p}" for p in lib_dirs]
                    + ["-lc10", "-ltorch", "-ltorch_cpu"])
    return commands


def build_key() -> str:
    digest = hashlib.sha256()
    for path in sorted(SOURCE_DIR.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(" ".join(OPTIMIZE).encode() + repr(FILE_FLAGS).encode() + cpu_signature().encode() + torch.__file__.encode())
    return f"torch-{torch.__version__.replace('+', '_')}_{digest.hexdigest()[:16]}"


def _run(cmd: list[str], verbose: bool) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=not verbose, text=True)


def _check(cmd: list[str], done: subprocess.CompletedProcess, folder: Path) -> None:
    """Raise RuntimeError (log in folder/build.log) if a compile or link command failed."""
    if done.returncode != 0:
        log = folder / "build.log"
        log.write_text(" ".join(cmd) + "\n" + (done.stdout or "") + (done.stderr or ""))
        raise RuntimeError(f"compiling the fused kernels failed; log in {log}\n"
                           + "\n".join((done.stderr or "").splitlines()[-10:]))


def build_library(force: bool = False, verbose: bool = False) -> Path:
    """Path of libmlpot_ops.so for the installed torch, compiled if not cached. Safe when
    several processes ask at once (file lock). Raises RuntimeError when compiling fails."""
    root = cache_root()
    key = build_key()
    target = root / key / LIBRARY_NAME
    if target.exists() and not force:
        return target
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        raise RuntimeError("no C++ compiler found (set CXX, or install g++): the fused kernels are not available")
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists() and not force:
            return target
        target.parent.mkdir(exist_ok=True)
        staging = target.with_suffix(".so.tmp")
        print(f"mlpot: compiling the fused kernels into {target.parent} ...", file=sys.stderr)
        *objects, link = compile_commands(compiler, staging)
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:   # one compiler per core
            for cmd, done in zip(objects, list(pool.map(lambda cmd: _run(cmd, verbose), objects))):
                _check(cmd, done, target.parent)
        _check(link, _run(link, verbose), target.parent)
        os.replace(staging, target)
        for obj in target.parent.glob("*.o"):   # intermediate objects of the link above
            obj.unlink()
    return target
