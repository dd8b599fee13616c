"""SchNetPack 2.1.1's SchNet with the architecture mlpot's benchmarks compare against (128 atom
features, 128 filters, 3 interactions, 20 Gaussians, cosine cutoff), energy and autograd forces.
Imported by the benchmark workers that run inside the SchNetPack venv (md_speed.py,
train_speed.py); needs only schnetpack and torch."""


def schnetpack_schnet(cutoff: float, postprocessors=None):
    """spk.model.NeuralNetworkPotential(SchNet 128/128/3/20) with outputs "energy" and "forces"."""
    import schnetpack as spk
    import torch

    torch.manual_seed(0)
    representation = spk.representation.SchNet(
        n_atom_basis=128, n_filters=128, n_interactions=3,
        radial_basis=spk.nn.GaussianRBF(n_rbf=20, cutoff=cutoff), cutoff_fn=spk.nn.CosineCutoff(cutoff))
    return spk.model.NeuralNetworkPotential(
        representation=representation, input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[spk.atomistic.Atomwise(n_in=128, output_key="energy"),
                        spk.atomistic.Forces(energy_key="energy", force_key="forces")],
        postprocessors=postprocessors or [])
