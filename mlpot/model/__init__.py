"""The model definition, torch only: Potential (representation + heads + per-element energies
and the pair repulsion), its config, statistics and the exported forward's wrappers."""
