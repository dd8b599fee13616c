"""mlpot: machine-learned interatomic potentials for ASE and LAMMPS."""
from mlpot import moved
from mlpot.version import __version__  # noqa: F401

moved.install()   # old module paths (mlpot.deploy.export, mlpot.model.nn, ...) import their new homes for one release


def __getattr__(name):
    # lazy, so that `import mlpot` stays light (no torch/ASE until the calculator is used)
    if name == "MLPotCalculator":
        from mlpot.deploy.calculator import MLPotCalculator
        return MLPotCalculator
    raise AttributeError(f"module 'mlpot' has no attribute {name!r}")
