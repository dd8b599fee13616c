"""Shared fixtures. Reference data lives in ../shared/data (not in the repository);
tests that need it skip with a message when it is absent."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_file(relative: str) -> Path:
    """Path of a file in ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"reference data {path} not found (../shared/data is not part of the repository)")
    return path


@pytest.fixture
def shared_data():
    return shared_file


# --- Compiled code: built once per session, from an empty cache -------------------------------
# The tests run the C++ operators and the LAMMPS plugin built from this checkout's sources in
# this session, never a build cached elsewhere: MLPOT_CACHE_DIR is a folder made empty for the
# session (the kernels land in its ops/, the plugin in its lammps/; ~1-2 min of compiling).
# It is set before anything imports lammps, whose import runs the `lammps.plugins` entry points:
# mlpot's builds the plugin into that cache and puts its folder on LAMMPS_PLUGIN_PATH, so that
# every LAMMPS instance of the process loads it. A LAMMPS_PLUGIN_PATH inherited from the shell
# (another build) is dropped.
_SESSION_CACHE = {}


def pytest_configure(config):
    import os
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="mlpot-test-cache-"))
    _SESSION_CACHE.update(folder=folder, environ={k: os.environ.get(k) for k in ("MLPOT_CACHE_DIR",
                                                                                 "LAMMPS_PLUGIN_PATH")})
    os.environ["MLPOT_CACHE_DIR"] = str(folder)
    os.environ.pop("LAMMPS_PLUGIN_PATH", None)


def pytest_unconfigure(config):
    import os
    import shutil

    if not _SESSION_CACHE:
        return
    for key, value in _SESSION_CACHE["environ"].items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(_SESSION_CACHE["folder"], ignore_errors=True)


@pytest.fixture(scope="session")
def plugin_cache():
    """This session's MLPOT_CACHE_DIR (empty at its start; kernels in ops/, the plugin in lammps/)."""
    return _SESSION_CACHE["folder"]


@pytest.fixture(scope="session")
def plugin(plugin_cache):
    """The plugin built from this checkout's sources into the session's cache; a second
    request is served from the cache, not rebuilt."""
    from mlpot.lammps import build_plugin

    cache = plugin_cache / "lammps"
    path = build_plugin(cache)
    built_at = path.stat().st_mtime_ns
    assert build_plugin(cache) == path and path.stat().st_mtime_ns == built_at
    return path


@pytest.fixture
def one_thread():
    """One torch thread for the test (the test machine is shared: results do not depend on it)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
