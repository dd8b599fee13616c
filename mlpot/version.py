"""mlpot's version (written into every model file's metadata as mlpot_version)."""
__version__ = "0.1.0"
