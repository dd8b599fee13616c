"""Map atomic numbers to the index of their element among a model's species."""
from typing import List

import torch

N_ELEMENTS = 119  # Z = 0 .. 118


def species_table(species: List[int]) -> torch.Tensor:
    """[119] int64: position of Z in sorted `species`, −1 for elements the model lacks."""
    table = torch.full((N_ELEMENTS,), -1, dtype=torch.long)
    for k, z in enumerate(sorted(int(z) for z in species)):
        if not 0 < z < N_ELEMENTS:
            raise ValueError(f"atomic number {z} in species is not an element (1..118)")
        table[z] = k
    return table


def species_index(table: torch.Tensor, atomic_numbers: torch.Tensor) -> torch.Tensor:
    """Element index [N] of each atom; a clear error for an element the model lacks."""
    if atomic_numbers.numel() == 0:
        return atomic_numbers
    if bool((atomic_numbers < 0).any()) or bool((atomic_numbers >= table.shape[0]).any()):
        raise ValueError("atomic numbers must lie in 1..118")
    index = table[atomic_numbers]
    missing = index < 0
    if bool(missing.any()):
        z = int(atomic_numbers[missing][0])
        raise ValueError("element Z=" + str(z) + " is not among the model's species; "
                         "train a model that includes it or remove those atoms")
    return index
