"""Start-up time of the ``dus`` command line: how long ``--help`` and friends take to answer.

Each command runs ``--repeats`` times in a fresh process (after one unmeasured warm-up run, so the file cache is
warm as for a user's second call); the table gives the median and the minimum wall time, beside two references
measured in the same run: ``python -c pass`` (the interpreter alone) and ``python -c "import torch"`` (what every
command paid before the imports were made lazy).

    python -m benchmarks.cli_startup                 # 7 repeats
    python -m benchmarks.cli_startup --repeats 15 --out benchmarks/results/cli_startup.md

``--source DIR`` measures the code of another checkout through this environment instead (for a before/after
comparison: ``git archive COMMIT | tar -x -C DIR``), by running its ``mml_backbones.cli.main`` with the
editable install's import hook removed and ``DIR`` first on the path.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _dus() -> str:
    """The ``dus`` console script of this interpreter's environment."""
    beside = Path(sys.executable).parent / "dus"
    found = str(beside) if beside.is_file() else shutil.which("dus")
    if found is None:
        raise SystemExit("no dus command found: install the package (make .venv/bin/.installed)")
    return found


#: runs another checkout's ``dus`` (sys.argv[1] is its directory): the editable install's finder would import ours
_FROM_SOURCE = (
    "import sys; root = sys.argv.pop(1); sys.path.insert(0, root); "
    "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]; "
    "from mml_backbones.cli import main; sys.argv[0] = 'dus'; sys.exit(main())"
)


def commands(source: str | None = None) -> dict[str, list[str]]:
    """Label -> argv of every command measured (references last); ``source``: another checkout's code."""
    dus = [_dus()] if source is None else [sys.executable, "-c", _FROM_SOURCE, source]
    return {
        "dus --help": [*dus, "--help"],
        "dus train --help": [*dus, "train", "--help"],
        "dus --version": [*dus, "--version"],
        "dus datasets": [*dus, "datasets"],
        "python -c pass (reference)": [sys.executable, "-c", "pass"],
        "python -c 'import torch' (reference)": [sys.executable, "-c", "import torch"],
    }


def measure(argv: list[str], repeats: int) -> tuple[list[float], int]:
    """Wall times of ``repeats`` runs of ``argv`` (after one warm-up run), in seconds, and its exit status."""
    status = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times, status


def table(repeats: int, source: str | None = None) -> str:
    """The markdown table of every command's median and minimum start-up time."""
    lines = ["| command | median (s) | min (s) | runs |", "|---|---:|---:|---:|"]
    for label, argv in commands(source).items():
        t, status = measure(argv, repeats)
        failed = f" (exit {status}: not supported)" if status else ""
        lines.append(f"| `{label}`{failed} | {statistics.median(t):.2f} | {min(t):.2f} | {len(t)} |")
        print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Measure and print the table (and write it to ``--out``)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=7, help="measured runs per command")
    p.add_argument("--out", help="also write the table to this markdown file")
    p.add_argument("--source", help="measure the code of this checkout (a directory) instead of the installed one")
    args = p.parse_args(argv)
    text = table(args.repeats, args.source)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return text


if __name__ == "__main__":
    main()
