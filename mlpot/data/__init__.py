"""Data: the ASE-db store, importers, dataset downloaders, splits and batching."""
from mlpot.data.batch import atoms_to_batch, atoms_to_graph, collate
from mlpot.data.dataset import AtomsDataset, batches
from mlpot.data.importers import DataError, import_data
from mlpot.data.splits import make_split
from mlpot.data.store import read_store, store_metadata, write_store

__all__ = ["atoms_to_batch", "atoms_to_graph", "collate", "AtomsDataset", "batches",
           "DataError", "import_data", "make_split", "read_store", "store_metadata",
           "write_store"]
