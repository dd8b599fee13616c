"""Simulation around the models: standard structures, labelling with a QM calculator
(GFN2-xTB), and the shared start of the md_examples scripts."""
