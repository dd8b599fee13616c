"""Deployment: export of model files and their metadata, the ASE calculator, committee
statistics and the skin neighbour list."""
