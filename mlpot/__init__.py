"""mlpot: machine-learned interatomic potentials for ASE and LAMMPS."""
__version__ = "0.1.0"


def __getattr__(name):
    # lazy, so that `import mlpot` stays light (no torch/ASE until the calculator is used)
    if name == "MLPotCalculator":
        from mlpot.deploy.calculator import MLPotCalculator
        return MLPotCalculator
    raise AttributeError(f"module 'mlpot' has no attribute {name!r}")
