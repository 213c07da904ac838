"""Equal tuning budgets (``dus tune``): every method and sampler tuned the same way before it is compared.

    space.py    the shared search space and each row's own knobs
    worlds.py   what a run is tuned on (a v1 world or a JSON file)
    rows.py     a row (method + sampler), its paper-default point, the checks that refuse what cannot run
    study.py    the Optuna studies, ask and tell, resumable, trials on local workers or Ray
    retrain.py  the best and the paper configurations retrained on downstream seeds, test scored once
    report.py   trial curves, chosen configurations, importances, the tuned table beside the untuned one
    cli.py      ``dus tune`` and ``python -m benchmarks.tuning``

See docs/tuning.md.
"""

from benchmarks.tuning.cli import main, register_commands

__all__ = ["main", "register_commands"]
