"""`mlpot train CONFIG.yaml`: train a potential as configured (docs/training.md).

Data-parallel: `torchrun --nproc_per_node=N -m mlpot train CONFIG.yaml`.
"""
from mlpot.commands.run_folder import add_run_arguments, run_guarded


def add_arguments(parser):
    parser.add_argument("config", help="training config (YAML with data, model, training, output)")
    add_run_arguments(parser, "training.max_epochs=10")
    parser.add_argument("--ensemble", type=int, default=None, metavar="N",
                        help="train a committee of N models (training.ensemble; members in OUTPUT/member_K)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")


def run(args) -> int:
    # lazy: cli.py imports every command module to build `mlpot --help`, which stays free of torch
    from mlpot.data.raw import DataError
    from mlpot.data.splits import SplitError
    from mlpot.train.checkpoint import CheckpointError
    from mlpot.train.config import ConfigError, load_config
    from mlpot.train.trainer import TrainingError, train

    def action():
        overrides = list(args.overrides)
        if args.ensemble is not None:
            overrides.append(f"training.ensemble={args.ensemble}")
        train(load_config(args.config, overrides), resume=args.resume, force=args.force, quiet=args.quiet)

    return run_guarded("mlpot train", args, action,
                       (ConfigError, CheckpointError, TrainingError, DataError, SplitError, FileNotFoundError))
