"""The speed benchmarks for two checkouts side by side: each runs its own copy of md_speed.py,
committee_speed.py, train_speed.py and lammps_speed.py, alternating old, new, new, old, ... so
that the machine's drift falls on both; prints the median of each figure and new/old.
    .venv/bin/python benchmarks/before_after.py --old /tmp/old --rounds 3 --json out.json
    .venv/bin/python benchmarks/before_after.py --old /tmp/old --only md_speed --rounds 1
--old and --new are checkouts (a `git worktree add` of a commit); each runs with PYTHONPATH set
to itself and this interpreter. SchNetPack is left out (its speed does not depend on mlpot's
code). Times are seconds or milliseconds per call or step (lower is better) except train_speed's
structures per second (higher is better); "change" is new/old for times, old/new for rates, so
above 1 is slower in both.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NO_SPK = "/nonexistent/schnetpack/python"

# name: (arguments, how a row is named, its figures, True where higher is better)
BENCHMARKS = {
    "md_speed": (["--threads", "1", "--reps", "20", "--spk-python", NO_SPK],
                 ("system",), ("schnet", "schnet_pt2", "schnet_fused", "schnet_torch", "wacsf"), False),
    "committee_speed": ([], ("system", "width", "dtype"), ("one_ms", "serial_ms", "threads2_ms", "stacked_ms"), False),
    "train_speed": (["--threads", "2", "--n-train", "320", "--epochs", "2", "--spk-python", NO_SPK],
                    ("implementation",), ("structures_per_s",), True),
    "lammps_speed": (["--systems", "si_13824", "--paths", "exchange", "shell", "--layouts", "1x1", "2x1",
                      "--no-ase", "--steps", "5", "--warmup", "1"],
                     ("system", "path", "ranks", "threads"), ("s_per_step",), False),
}


def run_once(tree: Path, name: str, args: list[str]) -> list[dict]:
    """The rows of one run of `tree`'s benchmarks/NAME.py (from its --json file or, for
    train_speed, its JSON lines on stdout)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, str(tree / "benchmarks" / f"{name}.py"), *args]
        if name != "train_speed":
            cmd += ["--json", str(out)]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        run = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit(f"{tree}: {name} failed:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}")
        if name == "train_speed":
            return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")][-1:]
        return json.loads(out.read_text())


def figures(name: str, rows: list[dict]) -> dict[str, float]:
    """{"row name / figure": value} of one run."""
    _, keys, values, _ = BENCHMARKS[name]
    found = {}
    for row in rows:
        label = " ".join(str(row[k]) for k in keys if k in row)
        for v in values:
            if isinstance(row.get(v), (int, float)):
                found[f"{label} / {v}"] = float(row[v])
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", required=True, type=Path, help="checkout of the earlier commit")
    parser.add_argument("--new", default=Path(__file__).resolve().parents[1], type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    samples: dict[str, dict[str, dict[str, list[float]]]] = {n: {"old": {}, "new": {}} for n in args.only}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for r in range(args.rounds):
        for name in args.only:
            order = ("old", "new") if (r + list(BENCHMARKS).index(name)) % 2 == 0 else ("new", "old")
            for side in order:
                tree = args.old if side == "old" else args.new
                t0 = time.time()
                for key, value in figures(name, run_once(tree, name, BENCHMARKS[name][0])).items():
                    samples[name][side].setdefault(key, []).append(value)
                print(f"round {r + 1}: {name} {side} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    table = []
    for name in args.only:
        higher_better = BENCHMARKS[name][3]
        for key in samples[name]["old"]:
            old = statistics.median(samples[name]["old"][key])
            new_values = samples[name]["new"].get(key)
            if not new_values:
                continue
            new = statistics.median(new_values)
            change = old / new if higher_better else new / old
            table.append({"benchmark": name, "figure": key, "old": old, "new": new, "change": change,
                          "old_rounds": samples[name]["old"][key], "new_rounds": new_values})
    print(f"\n{started}, {os.cpu_count()} cores, median of {args.rounds} alternating round(s); "
          f"change > 1 is slower")
    for row in table:
        print(f"{row['benchmark']:16s} {row['figure']:44s} {row['old']:12.5g} {row['new']:12.5g} {row['change']:6.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"started": started, "old": str(args.old), "new": str(args.new),
                                               "rounds": args.rounds, "rows": table}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
