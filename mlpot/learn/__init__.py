"""Active learning (`mlpot learn`): committee MD, selection by force deviation, labelling with a
reference calculator, retraining; see mlpot.learn.loop.

    from mlpot.learn import ActiveLearning, load_learn_config
    ActiveLearning(load_learn_config("learn.yaml"), calculator=my_ase_calculator).run()
"""
from mlpot.learn.config import LearnConfig, load_learn_config
from mlpot.learn.loop import ActiveLearning, LearnError

__all__ = ["ActiveLearning", "LearnConfig", "LearnError", "load_learn_config"]
