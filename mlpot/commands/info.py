"""`mlpot info model.pt [--json]`: the metadata of an exported model file."""
import json
import sys


def add_arguments(parser):
    parser.add_argument("model", help="model file written by `mlpot export`")
    parser.add_argument("--json", action="store_true", help="print the metadata as JSON")


def run(args) -> int:
    # lazy: cli.py imports every command module to build `mlpot --help`, which stays free of torch
    from mlpot.deploy.export import read_metadata
    from mlpot.deploy.metadata import format_metadata

    try:
        metadata = read_metadata(args.model)
    except (FileNotFoundError, ValueError) as err:
        print(f"mlpot info: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(metadata, indent=2, ensure_ascii=False) if args.json else format_metadata(metadata))
    return 0
