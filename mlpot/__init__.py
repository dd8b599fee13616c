"""mlpot: machine-learned interatomic potentials for ASE and LAMMPS."""
__version__ = "0.1.0"
