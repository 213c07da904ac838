"""The README and docs/ as a user meets them: every Python block runs, every command line parses, every link resolves.

Conventions (docs/development.md, "The documentation is tested"): ```python blocks run, in order, in one namespace per
file, in a temporary directory that sees the repository's ``benchmarks/``; a block preceded by ``<!-- no-run: why -->``
does not. In ```bash blocks every ``dus ...`` line is parsed by the real parser and every ``python -m benchmarks.X``
line must name a module whose ``--help`` lists its options. ```text blocks are output.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import re
import shlex
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: files whose relative links and images must resolve
LINKED = [*DOCS, ROOT / "benchmarks" / "RESULTS.md", ROOT / "benchmarks" / "archive_v0" / "RESULTS_v0.md"]
NO_RUN = "<!-- no-run"


def _tokens(path: Path) -> list:
    return MarkdownIt("commonmark").parse(path.read_text())


def fences(path: Path, lang: str) -> list[tuple[int, str, bool]]:
    """(line, code, runnable) of each fenced block of ``lang``; not runnable when a no-run comment precedes it."""
    tokens = [t for t in _tokens(path) if t.level == 0]
    out = []
    for i, t in enumerate(tokens):
        if t.type == "fence" and t.info.strip() == lang:
            before = tokens[i - 1] if i else None
            marked = before is not None and before.type == "html_block" and before.content.startswith(NO_RUN)
            out.append((t.map[0] + 1, t.content, not marked))
    return out


def _short(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_every_code_block_has_a_known_kind():
    """Blocks are python (run), bash (parsed), json (parsed) or text (output): another fence would go unchecked."""
    for path in DOCS:
        for t in _tokens(path):
            if t.type == "fence":
                where = f"{_short(path)}:{t.map[0] + 1}"
                assert t.info.strip() in ("python", "bash", "json", "text"), f"{where}: ```{t.info}"
                if t.info.strip() == "json":
                    json.loads(t.content)  # an example config must at least be valid JSON


WITH_PYTHON = [p for p in DOCS if any(run for _, _, run in fences(p, "python"))]


@pytest.mark.parametrize("path", WITH_PYTHON, ids=_short)
def test_python_blocks_run(path, tmp_path, monkeypatch):
    (tmp_path / "benchmarks").symlink_to(ROOT / "benchmarks")  # the committed policies, by their relative paths
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{path.stem}"}
    for line, code, runnable in fences(path, "python"):
        if runnable:
            try:
                exec(compile(code, f"{_short(path)}:{line}", "exec"), namespace)
            except Exception as e:
                pytest.fail(f"the block at {_short(path)}:{line} failed: {type(e).__name__}: {e}")


def command_lines(code: str) -> list[list[str]]:
    """The shell lines of a block as argument lists (continuations joined, comments dropped)."""
    return [argv for line in code.replace("\\\n", " ").splitlines() if (argv := shlex.split(line, comments=True))]


def _bash_commands() -> list[tuple[str, list[str]]]:
    out = []
    for path in DOCS:
        for line, code, _ in fences(path, "bash"):
            out += [(f"{_short(path)}:{line}", argv) for argv in command_lines(code)]
    return out


COMMANDS = _bash_commands()


@pytest.mark.parametrize(
    "where, argv", [c for c in COMMANDS if c[1][0] == "dus"], ids=lambda x: " ".join(x) if isinstance(x, list) else x
)
def test_dus_command_lines_parse(where, argv):
    from mml_backbones.cli import build_parser

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            args = build_parser().parse_args(argv[1:])
        except SystemExit:
            pytest.fail(f"{where}: `{shlex.join(argv)}` does not parse: {err.getvalue().strip().splitlines()[-1]}")
    assert callable(args.func)


BENCHMARK_LINES = [c for c in COMMANDS if c[1][:2] == ["python", "-m"] and c[1][2].startswith("benchmarks.")]


@pytest.mark.parametrize("where, argv", BENCHMARK_LINES, ids=lambda x: " ".join(x) if isinstance(x, list) else x)
def test_benchmark_command_lines_name_real_modules_and_options(where, argv):
    module = importlib.import_module(argv[2])
    assert hasattr(module, "main"), f"{where}: {argv[2]} has no main()"
    options = [a.split("=", 1)[0] for a in argv[3:] if a.startswith("--")]
    if not options:
        return
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        module.main(["--help"])
    assert done.value.code == 0
    missing = [o for o in options if o not in out.getvalue()]
    assert not missing, f"{where}: {argv[2]} has no option {missing}"


def test_the_docs_show_commands_of_both_kinds():
    """The checks above are not vacuous: the manual shows dus commands and benchmark scripts."""
    assert len([c for c in COMMANDS if c[1][0] == "dus"]) >= 10
    assert len(BENCHMARK_LINES) >= 10


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The #fragments that the headings of ``path`` define."""
    tokens = _tokens(path)
    return {slug(tokens[i + 1].content) for i, t in enumerate(tokens) if t.type == "heading_open"}


def links(path: Path) -> list[str]:
    """Targets of the links and images of ``path``."""
    out = []
    for t in _tokens(path):
        for child in t.children or []:
            target = child.attrGet("href") if child.type == "link_open" else child.attrGet("src")
            if child.type in ("link_open", "image") and target:
                out.append(target)
    return out


@pytest.mark.parametrize("path", LINKED, ids=_short)
def test_relative_links_and_images_resolve(path):
    broken = []
    for target in links(path):
        if re.match(r"[a-z]+:", target):  # https:, mailto: ...
            continue
        file, _, fragment = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists() or (fragment and dest.suffix == ".md" and fragment not in anchors(dest)):
            broken.append(target)
    assert not broken, f"{_short(path)}: broken links {broken}"


def test_slug_follows_github():
    assert slug("Is there anything to learn? The headroom gate") == "is-there-anything-to-learn-the-headroom-gate"
    assert slug("Training runs: `dus train`") == "training-runs-dus-train"


def test_the_readme_is_a_front_door_not_a_manual():
    """At most 200 lines (the manual is docs/), and it links every page of docs/."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} <= set(links(ROOT / "README.md"))
