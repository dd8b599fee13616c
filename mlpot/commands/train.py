"""`mlpot train CONFIG.yaml`: train a potential as configured (docs/training.md).

Data-parallel: `torchrun --nproc_per_node=N -m mlpot train CONFIG.yaml`.
"""


def add_arguments(parser):
    parser.add_argument("config", help="training config (YAML with data, model, training, output)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set training.max_epochs=10 (repeatable)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in the output folder from last.ckpt")
    parser.add_argument("--force", action="store_true",
                        help="start over even if the output folder holds checkpoints (overwrites them)")
    parser.add_argument("--ensemble", type=int, default=None, metavar="N",
                        help="train a committee of N models (training.ensemble; members in OUTPUT/member_K)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")


def run(args) -> int:
    import sys

    from mlpot.data.raw import DataError
    from mlpot.data.splits import SplitError
    from mlpot.train.checkpoint import CheckpointError
    from mlpot.train.config import ConfigError, load_config
    from mlpot.train.trainer import TrainingError, train

    if args.resume and args.force:
        print("mlpot train: error: --resume and --force exclude each other", file=sys.stderr)
        return 2
    try:
        overrides = list(args.overrides)
        if args.ensemble is not None:
            overrides.append(f"training.ensemble={args.ensemble}")
        cfg = load_config(args.config, overrides)
        train(cfg, resume=args.resume, force=args.force, quiet=args.quiet)
    except (ConfigError, CheckpointError, TrainingError, DataError, SplitError,
            FileNotFoundError) as exc:
        print(f"mlpot train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mlpot train: interrupted; continue with --resume", file=sys.stderr)
        return 130
    return 0
