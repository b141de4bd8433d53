"""The documentation works: every ```python block of README.md and docs/*.md runs, every doctest example of the
package passes, and every relative link points to a file that exists.

A block that is not meant to run is fenced as ```text. Each block runs in a fresh namespace in a temporary working
directory, so the files it writes land there.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import meanfield

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
MIN_DOCTEST_EXAMPLES = 5


def _python_blocks():
    blocks = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            if match.group(1) == "python":
                first_line = text.count("\n", 0, match.start(2)) + 1
                blocks.append(pytest.param(page, first_line, match.group(2),
                                           id=f"{page.relative_to(ROOT).as_posix()}:{first_line}"))
    return blocks


BLOCKS = _python_blocks()


def test_readme_starts_with_the_two_set_up_commands():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# meanfield-rnn"
    assert lines[1] == ""
    assert lines[2].startswith("    make study    # ")
    assert lines[3].startswith("    make test     # ")
    assert any("`.ci/run` runs `make test`" in line for line in lines[4:8])


def test_every_capability_has_a_runnable_example():
    readme = [block for block in BLOCKS if block.values[0].name == "README.md"]
    assert len(readme) >= 5, f"README.md has {len(readme)} python blocks, expected one per capability (5)"


@pytest.mark.parametrize("page, first_line, code", BLOCKS)
def test_code_block_runs(page, first_line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Leading newlines make a traceback name the line of the Markdown file.
    compiled = compile("\n" * (first_line - 1) + code, str(page), "exec")
    exec(compiled, {"__name__": f"docs_block_{first_line}"})


def _modules():
    """Every module of the package (meanfield/ and the solvers installed as meanfield.solvers), imported."""
    def fail(name):
        raise ImportError(f"cannot import {name} while walking the package")

    names = [info.name for info in pkgutil.walk_packages(meanfield.__path__, "meanfield.", onerror=fail)]
    solvers = importlib.import_module("meanfield.solvers")
    names += ["meanfield.solvers", *(info.name for info in pkgutil.walk_packages(solvers.__path__,
                                                                                 "meanfield.solvers.", onerror=fail))]
    return [meanfield, *(importlib.import_module(name) for name in dict.fromkeys(names))]


def test_doctest_examples_pass(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = []
    for module in _modules():
        for test in finder.find(module):
            runner.run(test, out=report.append)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, "doctest failures:\n" + "".join(report)
    assert results.attempted >= MIN_DOCTEST_EXAMPLES, f"only {results.attempted} doctest examples ran"


def _relative_links(page: Path):
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    text = INLINE_CODE.sub("", text)
    for target in LINK.findall(text):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor in the same page
        yield target.split("#", 1)[0]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_exist(page):
    missing = [target for target in _relative_links(page) if not (page.parent / target).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


def test_pages_link_to_each_other():
    readme = set(_relative_links(ROOT / "README.md"))
    for page in PAGES[1:]:
        assert f"docs/{page.name}" in readme, f"README.md does not link docs/{page.name}"
