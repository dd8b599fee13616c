"""`mlpot demo`: GFN2-xTB reference data -> SchNet (energies, forces, dipoles) -> model.pt ->
geometry optimisation, harmonic and MD spectra -> report.md and PNGs (docs/demo.md)."""
import sys


def add_arguments(parser):
    parser.add_argument("--molecule", default="CH3CH2OH",
                        help="a name known to ase.build.molecule (default: CH3CH2OH, ethanol)")
    parser.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite the demo's results in an existing output folder")
    parser.add_argument("--quick", action="store_true",
                        help="a tiny run (seconds; for tests, not for accuracy)")
    parser.add_argument("--max-train-time", type=float, default=None, metavar="SECONDS",
                        help="wall-clock budget of the training stage (default: 400, quick: 30)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads for training (default: 1, fastest for small molecules)")
    parser.add_argument("--learn", action="store_true",
                        help="reach the reference data by active learning (a committee, mlpot learn) and compare "
                             "with a random-sampling model with as many GFN2-xTB labels")
    parser.add_argument("--seed", type=int, default=0, help="seed of sampling, split and weights")


def run(args) -> int:
    # lazy: cli.py imports every command module to build `mlpot --help`, which stays free of torch
    from mlpot.demo import DemoError, DemoSettings, run_demo

    changes = {"molecule": args.molecule, "out": args.out, "force": args.force, "seed": args.seed,
               "learn": args.learn}
    if args.max_train_time is not None:
        changes["max_train_time"] = args.max_train_time
    if args.threads is not None:
        changes["threads"] = args.threads
    try:
        settings = DemoSettings.quick(**changes) if args.quick else DemoSettings(**changes)
        run_demo(settings)
    except (DemoError, ValueError, ImportError) as exc:
        print(f"mlpot demo: error: {exc}", file=sys.stderr)
        return 2
    return 0
