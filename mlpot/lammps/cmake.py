"""Running CMake for mlpot's C++ builds (the LAMMPS plugin, the C++ example of
md_examples/cpp): a clear error without cmake, every command and its output logged to one file,
the log's tail in the error when a step fails."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CMAKE_HINT = "install CMake >= 3.18 and a C++20 compiler (e.g. apt-get install cmake g++)"


def require_cmake() -> None:
    if shutil.which("cmake") is None:
        raise RuntimeError(f"cmake not found: {CMAKE_HINT}")


def configure_and_build(src: Path, build: Path, defines: dict[str, str], jobs: int = 1) -> list[list[str]]:
    """The configure (Release, -Dname=value for each define) and build commands of `src` in `build`."""
    configure = ["cmake", "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                 *[f"-D{name}={value}" for name, value in defines.items()]]
    return [configure, ["cmake", "--build", str(build), "--parallel", str(jobs)]]


def run_logged(commands: list[list[str]], log_path: Path, verbose: bool = False, what: str = "the build") -> None:
    """Run `commands` in order, each with its output appended to log_path (shown instead when
    verbose); RuntimeError naming the step, the log and its last lines when one fails."""
    require_cmake()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        for cmd in commands:
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            if verbose:
                done = subprocess.run(cmd)
            else:
                done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
            if done.returncode != 0:
                tail = "" if verbose else "".join(log_path.read_text().splitlines(True)[-15:])
                raise RuntimeError(f"{what} failed ({' '.join(cmd[:2])}); full log in {log_path}\n{tail}")
