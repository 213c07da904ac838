"""v1 is the default everywhere: DUSEnvConfig(), and make_config's ``trainer=`` overlays instead of resetting."""

import dus_env
from dus_env.config import DUSEnvConfig, make_config
from mml_backbones.trainer_config import TrainerConfig


def test_the_default_environment_is_dus_v1():
    assert DUSEnvConfig() == make_config(None, **dus_env.ENV_IDS["dus_env/DUS-v1"])
    c = DUSEnvConfig()
    assert c.reference and c.reward == "paired_selected_val" and c.action_budget == "equal"
    assert (
        c.trainer.optim.name == "sgd"
        and c.trainer.decision_interval == 47
        and "speed" in c.trainer.observation_features
    )


def test_trainer_dict_overlays_the_base_instead_of_resetting_it():
    base = make_config(None, **dus_env.ENV_IDS["dus_env/DUS-Strong-v0"])
    c = make_config(base, trainer={"epochs": 2})
    assert c.trainer.epochs == 2
    # everything else stays the base's: the strong preset, v0's Adam and interval (a reset gave v1's mild and SGD)
    assert c.trainer.dataset_options == {"preset": "strong"}
    assert c.trainer.optim.name == "adam" and c.trainer.decision_interval == 25
    # a TrainerConfig replaces the run whole; flat keys beside trainer= still apply on top
    whole = make_config(base, trainer=TrainerConfig(epochs=3), batch_size=16)
    assert whole.trainer == TrainerConfig(epochs=3, batch_size=16)
