from benchmarks.v1_downstream import LEARNED, cells, policies


def test_learned_rows_use_the_committed_policy_of_each_trained_world_and_algorithm():
    chosen = policies()
    assert "DUS-v1 PPO" in chosen and "DUS-v1 SAC" in chosen  # committed in benchmarks/results/policies_v1
    assert set(chosen) <= {f"{w} {a.upper()}" + (f" ({v})" if v else "") for w, a, v in LEARNED}
    # the committed demo policy (seed 0) is also the PPO seed best on the selection seeds
    assert chosen["DUS-v1 PPO"].endswith("policies_v1/DUS-v1_ppo/best/best_model.zip")


def test_policies_restricts_the_learned_rows_to_the_named_ones():
    grid = cells(["mild"], ["learned"], 2, learned=["DUS-v1 SAC"])
    assert {c.group for c in grid} == {"mild|joint|DUS-v1 SAC"} and len(grid) == 2
    assert all(c.sampler.startswith("policy:") for c in grid)
    assert len({c.group for c in cells(["mild"], ["learned"], 1)}) == len(policies())
