"""The first release's (v0) benchmarks, kept runnable: ``python -m benchmarks.archive_v0.<script>``.

The v0 worlds (``dus_env/DUS-v0`` and friends: Adam 1e-3, 4 epochs, a free quantity per modality, the
``delta_val_acc`` reward on a 1000-sample validation subset) sat where no allocation could matter; their results
and the audit that led to the v1 worlds are in ``RESULTS_v0.md`` beside these scripts. Each script writes to
``benchmarks/archive_v0/results/`` and, like every grid here, skips the runs already there.
"""
