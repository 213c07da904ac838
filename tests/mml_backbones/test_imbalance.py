"""A small instance of the imbalance the field talks about, measured by the linear probe."""

import numpy as np

from mml_backbones.optim import OptimConfig
from mml_backbones.trainer import Trainer, TrainerConfig

DATA = {"preset": "mild", "n_train": 2000, "n_val": 500, "n_test": 1000}


def weak_probe(**kwargs) -> float:
    # Adam, as the measurement below was made (the imbalance appears under SGD too, more slowly)
    tr = Trainer(TrainerConfig(dataset_options=DATA, epochs=5, optim=OptimConfig("adam"), **kwargs))
    tr.run_iterations(tr.total_iterations, [64] * len(tr.modalities))
    return tr.evaluate("test", probe=True)["probe/weak"]


def test_joint_training_under_trains_the_weak_modality():
    alone = np.mean([weak_probe(modalities=("weak",), seed=s) for s in (0, 1)])
    concat = np.mean([weak_probe(method="concat", seed=s) for s in (0, 1)])
    # measured on this instance: alone 0.411, concat 0.369 (means of seeds 0-1)
    assert concat < alone - 0.015
