"""Committee MD in LAMMPS for `mlpot learn` (learn.engine: lammps): the plugin's committee mode
writes the max force deviation every `sample_every` steps (docs/lammps.md, Committee), and a dump
at the same steps gives the frames. Periodic cells only (LAMMPS data files are boxes); molecules
explore with learn.engine: ase."""
from __future__ import annotations

from pathlib import Path

import numpy as np

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
    deviation file). Frames after the first one beyond `abort` are dropped (aborted = True)."""
    from mlpot.lammps import build_plugin, run_lammps, write_lammps_data

    if not atoms.pbc.all():
        raise ValueError("learn.engine lammps explores periodic cells; for molecules use learn.engine ase")
    folder.mkdir(parents=True, exist_ok=True)
    work = atoms.copy()
    work.set_cell(work.cell.standard_form()[0], scale_atoms=True)
    symbols = sorted(set(work.get_chemical_symbols()))
    write_lammps_data(folder / "data.lmp", work, symbols)
    (folder / "in.explore").write_text(INPUT.format(
        every=sample_every, models=" ".join(str(Path(m).resolve()) for m in models), symbols=" ".join(symbols),
        temperature=temperature, seed=1 + seed % 900_000_000, damp=1.0 / friction / 1000.0,
        timestep=timestep / 1000.0, steps=n_steps))
    try:
        run_lammps(folder / "in.explore", plugin=build_plugin(), cwd=folder, log="log.lammps")
        failed = False
    except RuntimeError:          # e.g. lost atoms: a model that blew the cell apart
        failed = True
    deviations = read_deviation_file(folder / "deviation.out") if (folder / "deviation.out").is_file() else {}
    positions = read_dump_positions(folder / "frames.dump", len(work)) if (folder / "frames.dump").is_file() else {}
    frames = []
    for step in sorted(set(deviations) & set(positions)):
        if step == 0:
            continue
        frame = work.copy()
        frame.calc = None
        frame.positions = positions[step]           # data file ids are 1..N in atoms order
        frame.info.update(deviation=deviations[step], temperature=float(temperature), step=step)
        frames.append(frame)
        if not deviations[step] <= abort:
            return frames, True
    return frames, failed
