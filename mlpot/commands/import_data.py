"""`mlpot import SRC -o store.db`: reference data -> an mlpot store (ASE SQLite, eV/Å)."""
import sys


def add_arguments(parser):
    parser.add_argument("src", help="input file: extxyz (or anything ase.io reads), MD17/rMD17 "
                                    "npz, ASE or SchNetPack database")
    parser.add_argument("-o", "--output", required=True, help="output store (ASE SQLite .db)")
    parser.add_argument("--format", default=None,
                        help="extxyz, md17, db, ase or an ase.io format name (default: guess)")
    parser.add_argument("--energy-unit", help="source energy unit, e.g. eV, kcal/mol, Hartree")
    parser.add_argument("--force-unit", help="source force unit, e.g. kcal/mol/Å, Hartree/Bohr "
                                             "(default: ENERGY/LENGTH)")
    parser.add_argument("--length-unit", help="source length unit, e.g. Å, Bohr")
    parser.add_argument("--stress-unit", help="source stress unit, e.g. eV/Å^3, GPa, kbar")
    parser.add_argument("--dipole-unit", help="source dipole unit, e.g. e*Å, Debye")
    parser.add_argument("--energy-key", help="property to use as energy (e.g. energy_U0; a db row's data or "
                                             "key, an extxyz info key, an npz array); must exist")
    parser.add_argument("--forces-key", help="property to use as forces (as --energy-key); must exist")
    parser.add_argument("--require", default=None,
                        help="comma-separated labels every row must have (energy,forces,...), "
                             "or 'none' (default: energy + the labels of the first good row)")
    parser.add_argument("--on-bad", choices=("skip", "refuse"), default="skip",
                        help="rows with NaN/inf, missing labels, a degenerate cell or overlapping "
                             "atoms: skip them (reported) or refuse the whole import (default: skip)")
    parser.add_argument("--limit", type=int, default=None, help="import only the first N structures")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")


def run(args) -> int:
    # lazy: cli.py imports every command module to build `mlpot --help`, which stays free of torch
    from mlpot.data.importers import DataError, StoreExistsError, import_data

    require = None
    if args.require is not None:
        require = [] if args.require.strip().lower() == "none" else \
            [s.strip() for s in args.require.split(",") if s.strip()]
    try:
        report = import_data(
            args.src, args.output, format=args.format, energy_unit=args.energy_unit,
            force_unit=args.force_unit, length_unit=args.length_unit,
            stress_unit=args.stress_unit, dipole_unit=args.dipole_unit, on_bad=args.on_bad,
            force=args.force, limit=args.limit, require=require, energy_key=args.energy_key,
            forces_key=args.forces_key)
    except (DataError, StoreExistsError, FileNotFoundError, ValueError) as exc:
        print(f"mlpot import: error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0
