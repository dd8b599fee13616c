"""Module paths that moved when the package took its layers as folders, and their homes now.

The old paths keep importing for one release: `import mlpot.heads` gives the module
mlpot.model.heads itself (one module object, so its classes are the same classes), with a
DeprecationWarning that names the new path. A moved package takes its submodules along
(mlpot.nn.cutoff is mlpot.model.nn.cutoff). mlpot/__init__.py installs the finder; it acts
only on the names below. (mlpot.potential, which merged two modules, stays a file.)
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "mlpot.calculator": "mlpot.deploy.calculator",
    "mlpot.cmake": "mlpot.lammps.cmake",
    "mlpot.committee": "mlpot.deploy.committee",
    "mlpot.demo.reference_stage": "mlpot.demo.labelling_stage",
    "mlpot.evaluate": "mlpot.train.evaluate",
    "mlpot.export": "mlpot.deploy.export",
    "mlpot.export_metadata": "mlpot.deploy.metadata",
    "mlpot.heads": "mlpot.model.heads",
    "mlpot.model_config": "mlpot.model.config",
    "mlpot.neighbors": "mlpot.data.neighbors",
    "mlpot.nn": "mlpot.model.nn",
    "mlpot.reference": "mlpot.sim.labelling",
    "mlpot.representations.filter_tables": "mlpot.kernels.filter_tables",
    "mlpot.representations": "mlpot.model.representations",
    "mlpot.schnet_forces": "mlpot.kernels.written_out",
    "mlpot.scripting": "mlpot.sim.scripting",
    "mlpot.skin_neighbors": "mlpot.deploy.skin_neighbors",
    "mlpot.stacked_committee": "mlpot.kernels.stacked",
    "mlpot.statistics": "mlpot.model.statistics",
    "mlpot.systems": "mlpot.sim.structures",
    "mlpot.train.ensemble": "mlpot.train.committee",
}


def new_name(name: str) -> str | None:
    """Where the module `name` lives now (None: it did not move)."""
    if name in MOVED:
        return MOVED[name]
    parent, _, child = name.rpartition(".")
    while parent:
        if parent in MOVED:
            return MOVED[parent] + name[len(parent):]
        parent, _, child = parent.rpartition(".")
    return None


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers an import of an old path with the module at its new one."""

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith("mlpot.") or new_name(fullname) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = new_name(spec.name)
        warnings.warn(f"{spec.name} moved to {new}; the old name goes in the next release",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(new)
        spec.loader_state = module.__spec__      # the import system sets __spec__ to the alias'
        return module

    def exec_module(self, module):
        module.__spec__ = module.__spec__.loader_state


def install() -> None:
    """Put the finder first on sys.meta_path (before the path finder would load an old
    submodule path a second time from the moved package's folder); idempotent."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())
