"""Public reference datasets: where to get them, a download cache, and parsers.

    path = fetch("rmd17")                      # ~/.cache/mlpot/rmd17/rmd17.tar.bz2
    prepare("rmd17", "ethanol.db", molecule="ethanol")

Cache: $MLPOT_CACHE, else ~/.cache/mlpot; one folder per dataset. A file already in
the cache is used without any network access. Without network, fetch() fails within
`timeout` seconds with a message naming the file to place in the cache by hand.

Checksums: none of the published archives could be downloaded from this machine, so no
SHA-256 is recorded below (None = unknown); verification is then skipped with a
warning. On first use the SHA-256 of the cached file is written next to it
(FILE.sha256) and later uses check the file against it, so a corrupted or replaced file
is noticed. Fill in `sha256` once a value has been checked against the source.

Parsers (all offline): parse_qm9_xyz / iter_qm9 (QM9 xyz with '*^' exponents),
iter_ani1 (ANI-1 HDF5 layout; h5py is optional), atoms_from_mp (Materials Project
summary documents), and the importers (mlpot.data.importers) for MD17/rMD17 npz and
ISO17's ASE databases.
"""
from __future__ import annotations

import hashlib
import json
import os
import tarfile
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlencode

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mlpot import units
from mlpot.data.importers import import_data
from mlpot.data.raw import DataError
from mlpot.data.store import check_writable, write_store


class DownloadError(RuntimeError):
    """A dataset file is not in the cache and could not be downloaded."""


@dataclass(frozen=True)
class RemoteFile:
    filename: str           # name in the cache folder
    url: str                # public address
    sha256: str | None      # None: not verified here (see module docstring)
    page: str               # human-readable landing page


MD17_MOLECULES = ("aspirin", "benzene2017", "ethanol", "malonaldehyde", "naphthalene",
                  "salicylic", "toluene", "uracil")
RMD17_MOLECULES = ("aspirin", "azobenzene", "benzene", "ethanol", "malonaldehyde",
                   "naphthalene", "paracetamol", "salicylic", "toluene", "uracil")
ISO17_FOLDS = ("reference", "reference_eq", "test_within", "test_other", "test_eq")

FILES: dict[str, RemoteFile] = {
    # Ramakrishnan et al., Sci. Data 1, 140022 (2014): 133,885 xyz files in a tar.bz2
    "qm9": RemoteFile("dsgdb9nsd.xyz.tar.bz2", "https://ndownloader.figshare.com/files/3195389",
                      None, "https://doi.org/10.6084/m9.figshare.c.978904.v5"),
    # Christensen & von Lilienfeld (2020): rmd17/npz_data/rmd17_<mol>.npz + rmd17/splits/
    "rmd17": RemoteFile("rmd17.tar.bz2", "https://figshare.com/ndownloader/files/23950376",
                        None, "https://figshare.com/articles/dataset/12672038"),
    # Schütt et al. (2017): iso17/<fold>.db (ASE db: total_energy in key_value_pairs, eV;
    # atomic_forces in data, eV/Å)
    "iso17": RemoteFile("iso17.tar.gz", "http://www.quantum-machine.org/datasets/iso17.tar.gz",
                        None, "http://quantum-machine.org/datasets/"),
    # Smith et al., Sci. Data 4, 170193 (2017): ANI-1_release/ani_gdb_s0{1..8}.h5
    "ani1": RemoteFile("ANI1_release.tar.gz", "https://ndownloader.figshare.com/files/9057631",
                       None, "https://doi.org/10.6084/m9.figshare.c.3846712"),
}
for _mol in MD17_MOLECULES:  # Chmiela et al. (2017), sGDML: z, R, E, F in kcal/mol, Å
    FILES[f"md17_{_mol}"] = RemoteFile(
        f"md17_{_mol}.npz", f"http://www.quantum-machine.org/gdml/data/npz/md17_{_mol}.npz",
        None, "http://www.sgdml.org/#datasets")

MP_URL = "https://api.materialsproject.org/materials/summary/"
MP_FIELDS = ("material_id", "structure", "energy_per_atom", "formation_energy_per_atom",
             "nsites")


def cache_dir() -> Path:
    """$MLPOT_CACHE or ~/.cache/mlpot."""
    return Path(os.environ.get("MLPOT_CACHE") or Path.home() / ".cache" / "mlpot")


def sha256sum(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, expected: str | None) -> None:
    """Check `path` against the published SHA-256, or against FILE.sha256 from first use."""
    digest = sha256sum(path)
    sidecar = path.with_name(path.name + ".sha256")
    if expected is None and sidecar.exists():
        expected = sidecar.read_text().split()[0]
    if expected is None:
        warnings.warn(f"no published checksum known for {path.name}: not verified "
                      f"(SHA-256 {digest} recorded in {sidecar.name})", stacklevel=3)
        sidecar.write_text(f"{digest}  {path.name}\n")
        return
    if digest != expected:
        raise DataError(f"{path}: SHA-256 {digest} does not match the expected {expected}; "
                        f"the file is damaged or a different version: delete it and fetch again")


def fetch(name: str, cache: str | os.PathLike | None = None, timeout: float = 10.0) -> Path:
    """Path of dataset file `name` (a key of FILES) in the cache, downloading it if needed."""
    if name not in FILES:
        raise KeyError(f"unknown dataset file {name!r}; known: {', '.join(sorted(FILES))}")
    remote = FILES[name]
    folder = Path(cache) if cache is not None else cache_dir()
    path = folder / name / remote.filename
    if path.exists():
        verify(path, remote.sha256)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    _download(remote.url, path, timeout, remote)
    verify(path, remote.sha256)
    return path


def _download(url: str, path: Path, timeout: float, remote: RemoteFile | None = None,
              headers: dict | None = None) -> None:
    part = path.with_name(path.name + ".part")
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "mlpot", **(headers or {})})
        with urllib.request.urlopen(request, timeout=timeout) as response, open(part, "wb") as fh:
            while True:
                block = response.read(1 << 20)
                if not block:
                    break
                fh.write(block)
        os.replace(part, path)
    except Exception as exc:
        if part.exists():
            part.unlink()
        page = f" (landing page {remote.page})" if remote else ""
        raise DownloadError(
            f"could not download {url} ({type(exc).__name__}: {exc}). Without network, "
            f"download it elsewhere{page} and place it by hand at {path}") from None


# --- QM9 ------------------------------------------------------------------------------
QM9_PROPERTIES = (  # name, unit as in the file (Ramakrishnan et al. 2014, Table 3)
    ("A", "GHz"), ("B", "GHz"), ("C", "GHz"), ("mu", "Debye"), ("alpha", "Bohr^3"),
    ("homo", "Hartree"), ("lumo", "Hartree"), ("gap", "Hartree"), ("r2", "Bohr^2"),
    ("zpve", "Hartree"), ("U0", "Hartree"), ("U", "Hartree"), ("H", "Hartree"),
    ("G", "Hartree"), ("Cv", "cal/(mol K)"))


def _qm9_float(text: str) -> float:
    return float(text.replace("*^", "e"))


def parse_qm9_xyz(text: str, energy: str = "U0"):
    """One QM9 xyz record -> ase.Atoms.

    Line 1: atom count n; line 2: "gdb <index>" and 15 properties (QM9_PROPERTIES, in
    file units); n lines "element x y z mulliken_charge" (Å, e; numbers may read
    1.2*^-5); then frequencies, SMILES and InChI lines. The `energy` property
    (default U0) becomes the label in eV; all properties go to atoms.info in file units,
    plus "gdb_index", "smiles" and "mulliken_charges".
    """
    lines = text.strip("\n").splitlines()
    try:
        n = int(lines[0].split()[0])
        head = lines[1].split()
        if head[0] != "gdb" or len(head) < 17:
            raise ValueError(f"property line starts {' '.join(head[:3])!r}, expected 'gdb <id>' "
                             f"and 15 properties")
        props = {name: _qm9_float(v) for (name, _), v in zip(QM9_PROPERTIES, head[2:17])}
        symbols, positions, charges = [], [], []
        for line in lines[2:2 + n]:
            parts = line.split()
            symbols.append(parts[0])
            positions.append([_qm9_float(v) for v in parts[1:4]])
            charges.append(_qm9_float(parts[4]))
        if len(symbols) != n:
            raise ValueError(f"{len(symbols)} atom lines, expected {n}")
    except (IndexError, ValueError) as exc:
        raise DataError(f"not a QM9 xyz record: {exc}") from None
    atoms = Atoms(symbols=symbols, positions=positions)
    atoms.info.update(props)
    atoms.info["gdb_index"] = int(head[1])
    smiles = lines[3 + n].split() if len(lines) > 3 + n else []
    if smiles:
        atoms.info["smiles"] = smiles[-1]
    atoms.info["mulliken_charges"] = np.array(charges)
    atoms.calc = SinglePointCalculator(atoms, energy=props[energy] * units.HARTREE_EV)
    return atoms


def iter_qm9(tar_path, limit: int | None = None, energy: str = "U0") -> Iterator:
    """Structures of dsgdb9nsd.xyz.tar.bz2 (or any tar of QM9 xyz files), sorted by name."""
    with tarfile.open(tar_path) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".xyz")),
                         key=lambda m: m.name)
        for member in members[:limit]:
            text = tar.extractfile(member).read().decode()
            try:
                yield parse_qm9_xyz(text, energy)
            except DataError as exc:
                raise DataError(f"{tar_path}:{member.name}: {exc}") from None


# --- ANI-1 ----------------------------------------------------------------------------
def iter_ani1(source, limit: int | None = None, high_energy: bool = False) -> Iterator:
    """Conformations of an ANI-1 HDF5 file (ani_gdb_s0X.h5) as ase.Atoms with energy in eV.

    Layout: /<gdb11_s0X>/<gdb11_s0X-N>/ with datasets species [n] (bytes, e.g. b'C'),
    coordinates [T, n, 3] (Å), energies [T] (Hartree), smiles; optional coordinatesHE /
    energiesHE (high-energy conformations, used if high_energy). `source` is a path
    (opened with h5py, an optional dependency) or an already opened mapping of the same
    layout.
    """
    if isinstance(source, (str, os.PathLike)):
        try:
            import h5py  # optional: h5py is no dependency of mlpot
        except ImportError:
            raise ImportError("reading ANI-1 .h5 files needs h5py: pip install h5py") from None
        with h5py.File(source, "r") as fh:
            yield from iter_ani1(fh, limit, high_energy)
        return
    count = 0
    for top in source:
        for name in source[top]:
            group = source[top][name]
            symbols = [s.decode() if isinstance(s, bytes) else str(s)
                       for s in np.asarray(group["species"]).ravel()]
            sets = [("coordinates", "energies")]
            if high_energy and "coordinatesHE" in group:
                sets.append(("coordinatesHE", "energiesHE"))
            for kx, ke in sets:
                coords = np.asarray(group[kx], dtype=float)
                energies = np.asarray(group[ke], dtype=float).ravel()
                if coords.shape != (len(energies), len(symbols), 3):
                    raise DataError(f"ANI-1 group {top}/{name}: {kx} has shape {coords.shape}, "
                                    f"expected ({len(energies)}, {len(symbols)}, 3)")
                for x, e in zip(coords, energies):
                    if limit is not None and count >= limit:
                        return
                    atoms = Atoms(symbols=symbols, positions=x)
                    atoms.calc = SinglePointCalculator(atoms, energy=e * units.HARTREE_EV)
                    atoms.info["ani1_group"] = f"{top}/{name}"
                    count += 1
                    yield atoms


# --- Materials Project ------------------------------------------------------------------
def atoms_from_mp(doc: dict):
    """One Materials Project summary document -> periodic ase.Atoms.

    Uses structure.lattice.matrix (Å, rows) and structure.sites[*].xyz (Å) with the
    element of the largest occupancy; energy = energy_per_atom × number of sites (eV).
    material_id and formation_energy_per_atom (eV/atom) go to atoms.info.
    """
    try:
        structure = doc["structure"]
        cell = np.asarray(structure["lattice"]["matrix"], dtype=float)
        symbols, positions = [], []
        for site in structure["sites"]:
            species = max(site["species"], key=lambda s: s.get("occu", 1.0))
            symbols.append(species["element"])
            positions.append(site["xyz"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"not a Materials Project summary document with a structure "
                        f"(missing {exc})") from None
    atoms = Atoms(symbols=symbols, positions=positions, cell=cell, pbc=True)
    for key in ("material_id", "formation_energy_per_atom"):
        if doc.get(key) is not None:
            atoms.info[key] = doc[key]
    if doc.get("energy_per_atom") is not None:
        atoms.calc = SinglePointCalculator(atoms, energy=float(doc["energy_per_atom"]) * len(atoms))
    return atoms


def parse_mp_json(payload) -> list:
    """A Materials Project API response ({"data": [...]}), a list of documents or one."""
    if isinstance(payload, (str, bytes)):
        payload = json.loads(payload)
    docs = payload.get("data", [payload]) if isinstance(payload, dict) else payload
    return [atoms_from_mp(d) for d in docs]


def fetch_materials_project(query: dict, cache: str | os.PathLike | None = None,
                            timeout: float = 30.0, limit: int = 1000) -> list:
    """Structures from the Materials Project summary endpoint (REST, key in $MP_API_KEY).

    `query` holds API filters, e.g. {"elements": "Si", "nsites_max": 8}. The JSON reply is
    cached (materials_project/<hash>.json), so a repeated query needs no network.
    """
    params = {**{k: str(v) for k, v in query.items()}, "_fields": ",".join(MP_FIELDS),
              "_limit": str(limit)}
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    path = (Path(cache) if cache is not None else cache_dir()) / "materials_project" / f"{key}.json"
    if not path.exists():
        api_key = os.environ.get("MP_API_KEY")
        if not api_key:
            raise DownloadError("Materials Project needs an API key: set MP_API_KEY (from "
                                "https://next-gen.materialsproject.org/api)")
        path.parent.mkdir(parents=True, exist_ok=True)
        _download(f"{MP_URL}?{urlencode(params)}", path, timeout,
                  headers={"X-API-KEY": api_key, "accept": "application/json"})
    return parse_mp_json(path.read_text())


# --- archives -> store ------------------------------------------------------------------
def _extract_member(tar_path: Path, member: str, dest: Path) -> Path:
    """Extract one member of a tar archive to `dest` (once)."""
    if dest.exists():
        return dest
    with tarfile.open(tar_path) as tar:
        try:
            fh = tar.extractfile(member)
        except KeyError:
            fh = None
        if fh is None:
            raise DataError(f"{tar_path} has no member {member}; is it the right archive?")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        with open(tmp, "wb") as out:
            out.write(fh.read())
        os.replace(tmp, dest)
    return dest


PREPARED = ("qm9", "md17", "rmd17", "iso17", "ani1")   # the names prepare() knows


def prepare(name: str, out_db, *, molecule: str | None = None, fold: str = "reference",
            limit: int | None = None, force: bool = False, cache=None, timeout: float = 10.0):
    """Fetch (or find in the cache) a dataset and write it as an mlpot store at `out_db`.

    name: "qm9", "md17" (molecule in MD17_MOLECULES), "rmd17" (molecule in
    RMD17_MOLECULES), "iso17" (fold in ISO17_FOLDS) or "ani1" (needs h5py). Any other
    name (Materials Project included: use fetch_materials_project) is a ValueError naming
    these. Returns the ImportReport or row count.

    ANI-1: only ANI-1_release/ani_gdb_s01.h5 (molecules with one heavy atom) is read; the
    other files of the archive (ani_gdb_s02.h5 ... s08.h5) are not. Read those with
    iter_ani1(path) after extracting them by hand.

    The member paths inside the archives (rmd17/npz_data/rmd17_<mol>.npz,
    iso17/<fold>.db, ANI-1_release/ani_gdb_s01.h5) follow the publications and have not
    been checked against the real downloads.
    """
    if name not in PREPARED:
        raise ValueError(f"unknown dataset {name!r} for prepare(); it knows {', '.join(PREPARED)}"
                         f" (Materials Project structures: fetch_materials_project(query))")
    check_writable(out_db, force)
    if name == "qm9":
        tar = fetch("qm9", cache, timeout)
        return write_store(out_db, iter_qm9(tar, limit), force=force, source=FILES["qm9"].url,
                           source_format="qm9-xyz", source_units={"energy": "Hartree", "length": "Å"})
    if name == "md17":
        if molecule not in MD17_MOLECULES:
            raise ValueError(f"md17 needs molecule= one of {', '.join(MD17_MOLECULES)}")
        return import_data(fetch(f"md17_{molecule}", cache, timeout), out_db, format="md17",
                           limit=limit, force=force)
    if name == "rmd17":
        if molecule not in RMD17_MOLECULES:
            raise ValueError(f"rmd17 needs molecule= one of {', '.join(RMD17_MOLECULES)}")
        tar = fetch("rmd17", cache, timeout)
        npz = _extract_member(tar, f"rmd17/npz_data/rmd17_{molecule}.npz",
                              tar.parent / "npz_data" / f"rmd17_{molecule}.npz")
        return import_data(npz, out_db, format="md17", limit=limit, force=force)
    if name == "iso17":
        if fold not in ISO17_FOLDS:
            raise ValueError(f"iso17 fold must be one of {', '.join(ISO17_FOLDS)}")
        tar = fetch("iso17", cache, timeout)
        db = _extract_member(tar, f"iso17/{fold}.db", tar.parent / f"{fold}.db")
        return import_data(db, out_db, format="db", limit=limit, force=force,
                           energy_key="total_energy", forces_key="atomic_forces")
    if name == "ani1":
        tar = fetch("ani1", cache, timeout)
        h5 = _extract_member(tar, "ANI-1_release/ani_gdb_s01.h5", tar.parent / "ani_gdb_s01.h5")
        return write_store(out_db, iter_ani1(h5, limit), force=force, source=FILES["ani1"].url,
                           source_format="ani1-h5", source_units={"energy": "Hartree", "length": "Å"})
    raise AssertionError(f"prepare() lists {name!r} in PREPARED but has no branch for it")
