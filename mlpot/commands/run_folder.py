"""What `mlpot train` and `mlpot learn` share: the options of a resumable run in an output
folder, and how its errors and interruptions are reported."""
from __future__ import annotations

import sys


def add_run_arguments(parser, example: str) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a config value, e.g. --set {example} (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue the run in the output folder")
    parser.add_argument("--force", action="store_true",
                        help="start over even if the output folder holds a run (overwrites it)")


def run_guarded(prog: str, args, action, expected: tuple) -> int:
    """action() with `expected` errors as one line and exit code 2; Ctrl-C says how to resume."""
    if args.resume and args.force:
        print(f"{prog}: error: --resume and --force exclude each other", file=sys.stderr)
        return 2
    try:
        action()
    except expected as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; continue with --resume", file=sys.stderr)
        return 130
    return 0
