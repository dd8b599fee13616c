"""Data: the ASE-db store, importers, dataset downloaders, splits and batching."""
from mlpot.data.batch import atoms_to_batch, atoms_to_graph, collate

__all__ = ["atoms_to_batch", "atoms_to_graph", "collate"]
