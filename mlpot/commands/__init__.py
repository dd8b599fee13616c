"""One module per `mlpot` subcommand: add_arguments(parser) and run(args)."""
