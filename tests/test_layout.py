"""The import rules of the layout (docs/architecture.md): solvers/ is numerics that knows nothing of networks."""

import ast
import sys
from pathlib import Path

import meanfield.solvers

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {"numpy", "scipy", "__future__"} | set(sys.stdlib_module_names)


def imported_roots(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


def test_solvers_import_only_numpy_scipy_and_the_standard_library():
    files = sorted((ROOT / "solvers").glob("*.py"))
    assert len(files) >= 4
    bad = {f"{p.name}: {name}" for p in files for name in imported_roots(p) if name not in ALLOWED}
    assert not bad, bad


def test_the_rule_catches_a_meanfield_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import numpy as np\nfrom meanfield.activations import ACTIVATIONS\n")
    assert [n for n in imported_roots(probe) if n not in ALLOWED] == ["meanfield"]


def test_solvers_install_inside_the_meanfield_namespace():
    assert Path(meanfield.solvers.__file__).parent.name == "solvers"
    from meanfield.solvers.ode import LinearKernelFlow  # noqa: F401


def test_the_files_that_the_code_cites_exist():
    """Docstrings and comments cite theory notes, benchmarks and configs by path; each must be in the repository
    (the users do not have the project's private references)."""
    import re

    cited = set()
    for path in [*ROOT.joinpath("meanfield").rglob("*.py"), *ROOT.joinpath("solvers").glob("*.py")]:
        for match in re.finditer(r"\b((?:theory_notes|benchmarks|meanfield|solvers|docs|notebooks)/[\w/.-]+\."
                                 r"(?:md|py|toml|ipynb))", path.read_text()):
            cited.add(match.group(1))
    assert len(cited) >= 10
    missing = sorted(c for c in cited if not (ROOT / c).exists())
    assert not missing, missing
    texts = [*ROOT.joinpath("meanfield").rglob("*.py"), *ROOT.joinpath("theory_notes").glob("*"),
             *ROOT.joinpath("docs").glob("*.md"), ROOT / "README.md"]
    assert not [p.name for p in texts if p.is_file() and "shared/reference" in p.read_text()]
