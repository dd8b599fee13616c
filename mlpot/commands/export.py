"""`mlpot export RUN/best.ckpt -o model.pt (or RUN: a committee run writes model_0.pt, model_1.pt, ...; with -o committee.pt2 one package holding every member) [--dtype float32|float64] [--kernels auto|fused|reference|tabulated] [--format torchscript|pt2] [--no-lammps-layers]`: a training checkpoint ->
one TorchScript file (.pt) or one AOTInductor package (.pt2) with its metadata (docs/exported_model.md)."""
import sys
from pathlib import Path


def add_arguments(parser):
    parser.add_argument("checkpoint", help="training checkpoint, e.g. RUN/best.ckpt; or a run folder: its "
                                           "best.ckpt, or for a committee (training.ensemble) every member's, "
                                           "written to OUTPUT_0.pt, OUTPUT_1.pt, ... (a .pt2 OUTPUT: one "
                                           "package with every member)")
    parser.add_argument("-o", "--output", default="model.pt", help="model file to write (default: model.pt)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="float32: fast (MD, LAMMPS); float64: Hessians, NVE, finite differences")
    parser.add_argument("--kernels", choices=("auto", "fused", "reference", "tabulated"), default="auto",
                        help="SchNet: tabulated: filter networks as quintic splines (fastest; their error, "
                             "measured at export and stored, is far below float32 rounding); fused: the networks "
                             "in mlpot's C++ kernels (both need mlpot or the LAMMPS plugin to load); reference: "
                             "plain PyTorch, loads with torch alone; auto (default): tabulated for float32, fused "
                             "for float64, reference where the C++ kernels do not compile")
    parser.add_argument("--table-spacing", type=float, default=0.0,
                        help="knot spacing of the tables, Å (default: the coarsest of 0.02, 0.01, ... whose "
                             "error is within 1e-8 of the filters' largest value and slope)")
    parser.add_argument("--format", choices=("torchscript", "pt2"), default=None,
                        help="torchscript: one TorchScript file (.pt; every model, ASE and LAMMPS); pt2: torch.export "
                             "compiled by AOTInductor for this machine kind (SchNet with fused or tabulated kernels, "
                             "ASE and LAMMPS; docs/exported_model.md). Default: from -o's extension "
                             "(.pt2: pt2, else torchscript)")
    parser.add_argument("--no-lammps-layers", dest="lammps_layers", action="store_false",
                        help=".pt2: leave out the layer models of LAMMPS' exchange path (pair_style mlpot, its "
                             "default), ~7 s of compiling each, two per interaction; the package then runs in "
                             "ASE and on LAMMPS' whole-model path (pair_style mlpot shell)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    parser.add_argument("--training-data", default=None,
                        help="where the training data came from (default: from the checkpoint's config)")


def training_data_of(checkpoint_path: str) -> str:
    """Where the training data came from, from the checkpoint's config (data.train and, when
    given, data.val / data.test)."""
    # lazy: cli.py imports every command module to build `mlpot --help`, which stays free of torch
    from mlpot.train.checkpoint import load_checkpoint

    data = load_checkpoint(checkpoint_path).get("config", {}).get("data", {})
    parts = [f"{key}: {data[key]}" for key in ("train", "val", "test") if data.get(key)]
    return "; ".join(parts) or "unknown"


def export_targets(source: str, output: str) -> list:
    """[(checkpoint, model file)] for `mlpot export SOURCE -o OUTPUT`: a checkpoint, a run
    folder (its best.ckpt) or a committee run folder (every member's, to OUTPUT_K.pt)."""
    # lazy: cli.py imports every command module to build `mlpot --help`, which stays free of torch
    from mlpot.train.committee import member_checkpoints, read_committee

    path, out = Path(source), Path(output)
    if path.is_dir() and read_committee(path) is not None:
        checkpoints = member_checkpoints(path)
        return [(str(c), str(out.with_name(f"{out.stem}_{k}{out.suffix or '.pt'}"))) for k, c in enumerate(checkpoints)]
    if path.is_dir():
        path = path / "best.ckpt"
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    return [(str(path), str(out))]


def file_format(output: str, requested: str | None) -> str:
    """"torchscript" or "pt2" for `-o output [--format requested]`; ValueError where the file's
    name would disagree with its kind."""
    suffix_kind = "pt2" if Path(output).suffix == ".pt2" else "torchscript"
    kind = requested or suffix_kind
    if kind != suffix_kind:
        wanted = ".pt2" if kind == "pt2" else ".pt"
        raise ValueError(f"-o {output} with --format {kind}: a {kind} file's name must end in {wanted} "
                         f"(a file's name must say its kind); use -o {Path(output).with_suffix(wanted).name}")
    return kind


def _fail(message) -> int:
    print(f"mlpot export: error: {message}", file=sys.stderr)
    return 2


def run(args) -> int:
    # lazy: cli.py imports every command module to build `mlpot --help`, which stays free of torch
    from mlpot.deploy.export import ModelFileError, export_model
    from mlpot.deploy.pt2 import export_pt2
    from mlpot.deploy.metadata import format_metadata

    try:
        kind = file_format(args.output, args.format)
        targets = export_targets(args.checkpoint, args.output)
    except (FileNotFoundError, ValueError) as err:
        return _fail(err)
    # each file to write and the checkpoints it holds: a committee run's members stacked in one
    # package for a .pt2, one file per member otherwise
    committee_pt2 = kind == "pt2" and len(targets) > 1
    jobs = ([([checkpoint for checkpoint, _ in targets], args.output)] if committee_pt2
            else [([checkpoint], output) for checkpoint, output in targets])
    existing = [output for _, output in jobs if Path(output).exists()]
    if existing and not args.force:
        return _fail(f"{', '.join(existing)} exists; choose another -o or pass --force to overwrite it")
    if not args.table_spacing >= 0:
        return _fail(f"--table-spacing must be > 0 Å (or 0, the default: chosen by the tables' error), "
                     f"got {args.table_spacing}")
    from mlpot.train.checkpoint import CheckpointError, load_potential  # lazy: as above

    write = export_pt2 if kind == "pt2" else export_model
    instead = "export TorchScript files instead (-o model.pt)" if committee_pt2 else "try --kernels reference (plain PyTorch)"
    for checkpoints, output in jobs:
        try:
            members = [load_potential(checkpoint) for checkpoint in checkpoints]
            training_data = args.training_data or training_data_of(checkpoints[0])
        except CheckpointError as err:
            return _fail(err)
        try:
            options = {"lammps_layers": args.lammps_layers} if kind == "pt2" else {}
            metadata = write(members if committee_pt2 else members[0], output, args.dtype,
                             training_data=training_data, kernels=args.kernels, table_spacing=args.table_spacing,
                             **options)
        except ModelFileError as err:   # a model a .pt2 cannot hold yet, or a package that fails its check
            return _fail(err)
        except RuntimeError as err:   # kernels that are not available (a compiler error, no compiler)
            return _fail(f"{str(err).splitlines()[0][:300]}; {instead}")
        print(f"wrote {output}")
        print(format_metadata(metadata))
    if committee_pt2:
        print(f"a committee of {len(targets)} in one file: MLPotCalculator({args.output!r})")
    elif len(targets) > 1:
        print(f"a committee of {len(targets)}: MLPotCalculator([{', '.join(repr(o) for _, o in targets)}]); "
              f"LAMMPS: pair_coeff * * {' '.join(o for _, o in targets)} <elements>")
    return 0
