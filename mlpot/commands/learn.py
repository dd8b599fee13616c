"""`mlpot learn CONFIG.yaml`: active learning with a committee and a reference calculator
(docs/active_learning.md)."""


def add_arguments(parser):
    parser.add_argument("config", help="YAML with learn:, model:, training: and output: (docs/active_learning.md)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set learn.max_iterations=3 (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue the run in the output folder")
    parser.add_argument("--force", action="store_true",
                        help="start over: deletes the output folder's store and iterations")
    parser.add_argument("--quiet", action="store_true", help="no per-iteration lines")


def run(args) -> int:
    import sys

    from mlpot.data.raw import DataError
    from mlpot.learn import ActiveLearning, LearnError, load_learn_config
    from mlpot.train.checkpoint import CheckpointError
    from mlpot.train.config import ConfigError
    from mlpot.train.trainer import TrainingError

    if args.resume and args.force:
        print("mlpot learn: error: --resume and --force exclude each other", file=sys.stderr)
        return 2
    try:
        cfg = load_learn_config(args.config, args.overrides)
        ActiveLearning(cfg, resume=args.resume, force=args.force, quiet=args.quiet).run()
    except (ConfigError, LearnError, CheckpointError, TrainingError, DataError, FileNotFoundError,
            ImportError) as exc:
        print(f"mlpot learn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mlpot learn: interrupted; continue with --resume", file=sys.stderr)
        return 130
    return 0
