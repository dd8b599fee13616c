"""Committee MD in LAMMPS for `mlpot learn` (learn.engine: lammps): the plugin's committee mode
writes the max force deviation every `sample_every` steps (docs/lammps.md, Committee), and a dump
at the same steps gives the frames. Periodic cells only (LAMMPS data files are boxes); molecules
explore with learn.engine: ase."""
from __future__ import annotations

from pathlib import Path

import numpy as np

import mlpot.lammps   # used as mlpot.lammps.X, looked up at each call (tests replace build_plugin, run_lammps)

INPUT = """units metal
atom_style atomic
boundary p p p
read_data data.lmp
pair_style mlpot out_freq {every} out_file deviation.out
pair_coeff * * {models} {symbols}
velocity all create {temperature} {seed} mom yes rot no dist gaussian
fix nve all nve
fix thermostat all langevin {temperature} {temperature} {damp} {seed}
timestep {timestep}
dump frames all custom {every} frames.dump id type x y z
dump_modify frames sort id format float %.12g
thermo {every}
run {steps}
"""


# LAMMPS errors of atoms that flew apart (a model far off), not of the input or the build
BLOW_UP = ("Lost atoms", "Out of range atoms", "Non-numeric atom coords")


def read_deviation_file(path: Path) -> dict:
    """{step: max_devi_f} from the plugin's deviation file (later lines win for a repeated step)."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            fields = line.split()
            out[int(fields[0])] = float(fields[1])
    return out


def read_dump_positions(path: Path, n_atoms: int) -> dict:
    """{step: positions [N, 3] in atom-id order} from a `dump custom id type x y z` file."""
    lines = Path(path).read_text().splitlines()
    frames, k = {}, 0
    while k < len(lines):
        if lines[k].startswith("ITEM: TIMESTEP"):
            step = int(lines[k + 1])
            k += 2
            continue
        if lines[k].startswith("ITEM: ATOMS"):
            rows = np.array([line.split() for line in lines[k + 1:k + 1 + n_atoms]], dtype=float)
            frames[step] = rows[np.argsort(rows[:, 0]), 2:5]
            k += 1 + n_atoms
            continue
        k += 1
    return frames


def lammps_committee_md(atoms, models, temperature: float, n_steps: int, sample_every: int, timestep: float,
                        friction: float, abort: float, seed: int, folder: Path) -> tuple[list, bool]:
    """As mlpot.learn.explore.committee_md, in LAMMPS (in `folder`, which keeps the input, dump and
    deviation file). Frames after the first one beyond `abort` are dropped (aborted = True). A run
    that LAMMPS stops because atoms flew apart ends in a frame of deviation inf (aborted = True);
    a plugin that cannot be built, or any other LAMMPS error, raises LearnError."""
    from mlpot.learn.loop import LearnError, first_line  # lazy: mlpot.learn.loop imports this module

    try:
        plugin = mlpot.lammps.build_plugin()
    except (RuntimeError, OSError) as exc:
        raise LearnError(f"learn.engine lammps: the LAMMPS plugin cannot be built ({first_line(exc)}); "
                         "fix that (`mlpot lammps build` shows why) or use learn.engine ase") from None
    folder.mkdir(parents=True, exist_ok=True)
    work = atoms.copy()
    work.set_cell(work.cell.standard_form()[0], scale_atoms=True)
    symbols = sorted(set(work.get_chemical_symbols()))
    mlpot.lammps.write_lammps_data(folder / "data.lmp", work, symbols)
    (folder / "in.explore").write_text(INPUT.format(
        every=sample_every, models=" ".join(str(Path(m).resolve()) for m in models), symbols=" ".join(symbols),
        temperature=temperature, seed=1 + seed % 900_000_000, damp=1.0 / friction / 1000.0,
        timestep=timestep / 1000.0, steps=n_steps))
    try:
        mlpot.lammps.run_lammps(folder / "in.explore", plugin=plugin, cwd=folder, log="log.lammps")
        blew_up = False
    except (RuntimeError, OSError) as exc:
        blew_up = any(sign in str(exc) for sign in BLOW_UP)
        if not blew_up:
            raise LearnError(f"learn.engine lammps: {first_line(exc)}; see {folder / 'log.lammps'}") from None
    deviations = read_deviation_file(folder / "deviation.out") if (folder / "deviation.out").is_file() else {}
    positions = read_dump_positions(folder / "frames.dump", len(work)) if (folder / "frames.dump").is_file() else {}
    frames, step = [], 0
    for step in sorted(set(deviations) & set(positions) - {0}):
        frames.append(_frame(work, positions[step], deviations[step], temperature, step))
        if not deviations[step] <= abort:
            return frames, True
    if blew_up:
        frames.append(_frame(work, np.nan, float("inf"), temperature, step + sample_every))
        return frames, True
    if not frames:
        raise LearnError(f"learn.engine lammps: LAMMPS ran but wrote no frames (deviation.out, frames.dump) in "
                         f"{folder}; see its log.lammps")
    return frames, False


def _frame(work, positions, deviation: float, temperature: float, step: int):
    frame = work.copy()
    frame.calc = None
    frame.positions[:] = positions           # data file ids are 1..N in atoms order
    frame.info.update(deviation=deviation, temperature=float(temperature), step=step)
    return frame

