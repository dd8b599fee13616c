"""Train / validation / test splits, seeded, saved as split.npz and reused.

    split = make_split(1000, n_train=950, n_val=50, seed=0, path="runs/x/split.npz")
    split["train"], split["val"], split["test"]   # int64 index arrays into the dataset

Sizes are counts (int) or fractions (float in (0, 1]; 1.0 is all) of the dataset; the test part
gets what is left unless n_test is given. split.npz holds the arrays train, val, test,
n_total and seed. If `path` exists it is loaded instead (a resumed run keeps its split),
after checking that it was made for a dataset of the same size.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

PARTS = ("train", "val", "test")


class SplitError(ValueError):
    """A split cannot be made or an existing split.npz does not fit the dataset."""


def _count(size, n_total: int, name: str) -> int | None:
    """A size as a count: ints are counts, floats in (0, 1] are fractions of n_total."""
    if size is None:
        return None
    if isinstance(size, (float, np.floating)):
        if 0.0 < size <= 1.0:
            return int(round(float(size) * n_total))
        if not float(size).is_integer():
            raise SplitError(f"{name}={size}: use a count or a fraction between 0 and 1")
    size = int(size)
    if size < 0:
        raise SplitError(f"{name}={size} must be >= 0")
    return size


def random_split(n_total: int, n_train, n_val=0, n_test=None, seed: int = 0) -> dict:
    """A seeded random split of range(n_total) into disjoint train/val/test index arrays."""
    n_total = int(n_total)
    tr = _count(n_train, n_total, "n_train")
    va = _count(n_val, n_total, "n_val") or 0
    te = _count(n_test, n_total, "n_test")
    if tr is None:
        raise SplitError("n_train is required")
    asked = f"n_train={n_train!r} ({tr}) + n_val={n_val!r} ({va})"
    if te is None:
        te = max(n_total - tr - va, 0)
    else:
        asked += f" + n_test={n_test!r} ({te})"
    if tr + va + te > n_total:
        raise SplitError(f"{asked} is more than the {n_total} structures in the dataset")
    perm = np.random.default_rng(seed).permutation(n_total).astype(np.int64)
    return {"train": np.sort(perm[:tr]), "val": np.sort(perm[tr:tr + va]),
            "test": np.sort(perm[tr + va:tr + va + te]),
            "n_total": np.int64(n_total), "seed": np.int64(seed)}


def save_split(split: dict, path: str | os.PathLike) -> Path:
    """Write split.npz atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **{k: np.asarray(v) for k, v in split.items()})
    os.replace(tmp, path)
    return path


def check_split(split: dict, n_total: int, name: str, advice: str) -> None:
    """SplitError (naming `name`, ending in `advice`) unless `split` was made for n_total structures."""
    stored = int(split["n_total"]) if "n_total" in split else None
    indices = np.concatenate([np.ravel(split[k]) for k in PARTS]).astype(np.int64)
    if stored is not None and stored != n_total:
        raise SplitError(f"{name} was made for a dataset of {stored} structures but this dataset "
                         f"has {n_total}; {advice}")
    if indices.size and (indices.min() < 0 or indices.max() >= n_total):
        raise SplitError(f"{name} holds indices {indices.min()}..{indices.max()} but this dataset "
                         f"has {n_total} structures; {advice}")


def load_split(path: str | os.PathLike, n_total: int | None = None,
               advice: str = "delete it for a new split, or use the data it was made for") -> dict:
    """Read split.npz; with n_total, check that it belongs to a dataset of that size.
    Every SplitError ends in `advice`."""
    path = Path(path)
    if not path.is_file():
        raise SplitError(f"split file {path} not found; {advice}")
    try:
        with np.load(path) as data:
            split = {k: data[k] for k in data.files}
    except Exception as exc:
        raise SplitError(f"{path}: cannot read as a split file ({type(exc).__name__}: {exc}); "
                         f"{advice}") from None
    missing = [k for k in PARTS if k not in split]
    if missing:
        raise SplitError(f"{path}: not a split file (missing {', '.join(missing)}); {advice}")
    if n_total is not None:
        check_split(split, n_total, str(path), advice)
    return split


def make_split(n_total: int, n_train, n_val=0, n_test=None, seed: int = 0,
               path: str | os.PathLike | None = None) -> dict:
    """Load `path` if it exists (checked against n_total), else make a split and save it."""
    if path is not None and Path(path).exists():
        return load_split(path, n_total)
    split = random_split(n_total, n_train, n_val, n_test, seed)
    if path is not None:
        save_split(split, path)
    return split
