"""`mlpot learn CONFIG.yaml`: active learning with a committee and a reference calculator
(docs/active_learning.md)."""
from mlpot.commands.run_folder import add_run_arguments, run_guarded


def add_arguments(parser):
    parser.add_argument("config", help="YAML with learn:, model:, training: and output: (docs/active_learning.md)")
    add_run_arguments(parser, "learn.max_iterations=3")
    parser.add_argument("--quiet", action="store_true", help="no per-iteration lines")


def run(args) -> int:
    # lazy: cli.py imports every command module to build `mlpot --help`, which stays free of torch
    from mlpot.data.raw import DataError
    from mlpot.learn import ActiveLearning, LearnError, load_learn_config
    from mlpot.train.checkpoint import CheckpointError
    from mlpot.train.config import ConfigError
    from mlpot.train.trainer import TrainingError

    def action():
        cfg = load_learn_config(args.config, args.overrides)
        ActiveLearning(cfg, resume=args.resume, force=args.force, quiet=args.quiet).run()

    return run_guarded("mlpot learn", args, action, (ConfigError, LearnError, CheckpointError, TrainingError,
                                                     DataError, FileNotFoundError, ImportError))
