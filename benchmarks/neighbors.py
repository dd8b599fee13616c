"""Neighbour-list time: mlpot (matscipy) vs ase.neighborlist.neighbor_list.

Si diamond at ~1k, 10k, 100k atoms, cutoff 5 Å. Prints one line per size:
atoms, seconds for each implementation, pairs, and microseconds per atom (linear
scaling shows as a constant per-atom time).
    python benchmarks/neighbors.py [--skip-ase-above 20000]
"""
import argparse
import time

from ase.build import bulk
from ase.neighborlist import neighbor_list as ase_neighbor_list

from mlpot.data.neighbors import neighbor_list

CUTOFF = 5.0


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-ase-above", type=int, default=200_000, help="skip ASE for larger systems")
    args = ap.parse_args()
    unit = bulk("Si", "diamond", a=5.43, cubic=True)  # 8 atoms
    print(f"{'atoms':>8} {'mlpot_s':>9} {'ase_s':>9} {'pairs':>10} {'mlpot_us/atom':>14} {'speedup':>8}")
    for reps in (5, 11, 23):  # 1000, 10648, 97336 atoms
        atoms = unit.repeat(reps)
        n = len(atoms)
        repeats = 3 if n < 50_000 else 1
        t_ours, (i, _, _) = best_of(lambda: neighbor_list(atoms, CUTOFF), repeats)
        if n <= args.skip_ase_above:
            t_ase, (ia, _, _) = best_of(lambda: ase_neighbor_list("ijS", atoms, CUTOFF), repeats)
            assert len(ia) == len(i), "pair counts differ from ASE"
            ase_text, speed = f"{t_ase:9.3f}", f"{t_ase / t_ours:7.1f}x"
        else:
            ase_text, speed = f"{'skipped':>9}", f"{'':>8}"
        print(f"{n:8d} {t_ours:9.3f} {ase_text} {len(i):10d} {1e6 * t_ours / n:14.2f} {speed}", flush=True)


if __name__ == "__main__":
    main()
