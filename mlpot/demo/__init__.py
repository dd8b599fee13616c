"""`mlpot demo`: GFN2-xTB reference data -> SchNet -> model.pt -> spectra and a report.

    from mlpot.demo import DemoSettings, run_demo
    run_demo(DemoSettings(molecule="CH3CH2OH", out="demo_output"))
"""
from mlpot.demo.pipeline import DemoError, run_demo
from mlpot.demo.settings import DemoSettings

__all__ = ["DemoError", "DemoSettings", "run_demo"]
