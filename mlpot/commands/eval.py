"""`mlpot eval MODEL DATA`: errors of a trained model on labelled data, as JSON."""
import json
import sys


def add_arguments(parser):
    parser.add_argument("model", help="training checkpoint (.ckpt) or exported model (.pt)")
    parser.add_argument("data", help="labelled data: mlpot store (.db) or any importable file "
                                     "(rMD17 npz, extxyz, ...)")
    parser.add_argument("--plot", metavar="PNG", help="also write a parity plot to this file")
    parser.add_argument("--batch-size", type=int, default=32, help="structures per forward pass")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N structures")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--format", default=None, help="data format for the importer (default: guess)")
    parser.add_argument("--energy-unit", help="source energy unit when the file does not say")
    parser.add_argument("--force-unit", help="source force unit when the file does not say")


def run(args) -> int:
    # lazy: cli.py imports every command module to build `mlpot --help`, which stays free of torch
    from mlpot.data.raw import DataError
    from mlpot.train.evaluate import errors, load_model, parity_plot, predict
    from mlpot.train.checkpoint import CheckpointError
    from mlpot.train.data import read_structures

    try:
        potential = load_model(args.model, device=args.device)
        structures = read_structures(args.data, args.format, args.energy_unit, args.force_unit,
                                     limit=args.limit)
        pred = predict(potential, structures, batch_size=args.batch_size)
    except (CheckpointError, DataError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"mlpot eval: error: {exc}", file=sys.stderr)
        return 2
    result = {"model": str(args.model), "data": str(args.data), **errors(pred)}
    if args.plot:
        parity_plot(pred, args.plot)
        result["plot"] = str(args.plot)
    print(json.dumps(result, indent=2))
    return 0
