"""The v0 ids keep reproducing the first release exactly now that every default is v1's.

``data/v0_configs.json`` is the resolved DUSEnvConfig of every v0 id as main gave it before the defaults moved to
v1 (commit b215a13); the returns below were measured on that commit with the same samplers and seeds.
"""

import json
from pathlib import Path

import gymnasium as gym
import pytest

import dus_env
from agents.evaluation import run_episode
from agents.heuristic import HeuristicSampler
from mml_backbones.config import to_dict
from mml_backbones.samplers import UniformSampler

PINNED = json.loads((Path(__file__).parent / "data" / "v0_configs.json").read_text())
#: the first release's heuristic (gamma 1, free budget), written out now that ``heuristic`` means v1's
V0_HEURISTIC = HeuristicSampler(gamma=1.0, budget="free")


@pytest.mark.parametrize("env_id", sorted(PINNED))
def test_every_v0_config_is_unchanged(env_id):
    assert to_dict(dus_env.make_config(None, **dus_env.ENV_IDS[env_id])) == PINNED[env_id]


@pytest.mark.parametrize(
    ("sampler", "ret", "acc"), [(UniformSampler(), 27.34375, 0.4453125), (V0_HEURISTIC, 31.25, 0.484375)]
)
def test_a_v0_episode_returns_what_the_first_release_gave(sampler, ret, acc):
    env = gym.make("dus_env/DUS-Tiny-v0").unwrapped
    ep = run_episode(env, sampler, 10000)
    assert ep.ret == pytest.approx(ret, abs=1e-6)
    assert ep.final_val_acc == pytest.approx(acc, abs=1e-9)


def test_one_epoch_of_dus_v0_with_the_v0_heuristic_is_unchanged():
    env = gym.make("dus_env/DUS-v0", epochs=1).unwrapped
    ep = run_episode(env, V0_HEURISTIC, 10001)
    assert ep.ret == pytest.approx(72.9, abs=1e-6) and ep.final_val_acc == pytest.approx(0.853, abs=1e-9)
    assert ep.quantities[:3] == [{"strong": 64, "weak": 64}, {"strong": 50, "weak": 90}, {"strong": 44, "weak": 116}]
