"""Mutation testing of the science modules: do the tests catch the bugs a careful developer could make?

Run from the repository root (each mutant runs its module's tests in a subprocess; minutes per module)::

    python benchmarks/mutate.py [--module NAME ...] [--sample K] [--jobs J] [--out FILE] [--index I ...]

For each module of ``MODULES`` the script lists every *plausible* mutant of its code, one AST change each:

- an arithmetic operator swapped (``+``/``-``, ``*``/``/``, ``**`` to ``*``),
- a comparison loosened or tightened (``<``/``<=``, ``>``/``>=``, ``==``/``!=``),
- an integer constant moved up by one (``n - 1`` to ``n - 2``; ``axis=0`` to ``axis=1``), a float constant doubled,
- a unary minus dropped, ``and``/``or`` swapped, a subscript index moved by one (``x[-1]`` to ``x[-2]``).

Messages, docstrings, ``raise``/``assert``/``warn`` statements, the argument checks whose body only raises, the
default values of arguments, and the code that draws figures or words the report are left alone: a mutant there
changes a message, a setting or a picture, not how a result is computed. It draws ``--sample`` of them (seeded:
a rerun on the same source draws the same ones), writes each into a scratch copy of the repository (the working
tree is never touched) and runs the module's tests there with ``pytest -x``. A mutant is *killed* when the tests
fail (or time out at three times the unmutated run), *survived* otherwise. The report (``--out``, default
``results/mutation/report.json``) lists every mutant with its line, its change and its fate, and the kill ratio
per module is printed. Equivalent survivors are judged by hand: the closing note of the issue lists them.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# module -> the tests that exercise it (the fast, exact ones first: -x stops at the first failure)
MODULES = {
    "meanfield/architectures/diagonal/limit.py": ["tests/test_limit.py"],
    "meanfield/architectures/diagonal/fluctuations.py": ["tests/test_fluctuations_exact.py",
                                                         "tests/test_fluctuations.py"],
    "meanfield/stats.py": ["tests/test_stats.py", "tests/test_convergence.py"],
    "meanfield/studies/width_law.py": ["tests/test_width_law.py"],
    "meanfield/diagnostics.py": ["tests/test_diagnostics.py", "tests/test_width_law.py"],
    "meanfield/svm.py": ["tests/test_timeseries.py", "tests/test_ucr.py"],
    "meanfield/timeseries.py": ["tests/test_timeseries.py"],
    "meanfield/studies/ucr.py": ["tests/test_ucr.py"],
    "meanfield/expressions.py": ["tests/test_expressions.py"],
    "meanfield/studies/framework.py": ["tests/test_framework.py"],
    "meanfield/studies/convergence.py": ["tests/test_verdict.py", "tests/test_study.py"],
    "meanfield/checks.py": ["tests/test_inputs.py", "tests/test_framework.py"],
}
SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
         ast.FloorDiv: ast.Mult, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
         ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.And: ast.Or, ast.Or: ast.And}
SKIPPED_CALLS = {"warn", "print", "ValueError", "TypeError", "ConfigError", "format", "join", "describe",
                 "duration", "tqdm", "add_argument", "round", "subplots", "plot", "loglog", "semilogx", "semilogy",
                 "errorbar", "fill_between", "legend", "text", "annotate", "axhline", "axvline", "scatter",
                 "set_xlabel", "set_ylabel", "set_title", "set_xlim", "set_ylim", "savefig", "figure", "tick_params",
                 "suptitle", "tight_layout", "hist", "bar", "set_size_inches"}
# functions that draw or word the report, and aeon's test setup
SKIPPED_FUNCTIONS = ("plot", "figure", "markdown", "draw", "_text", "_table", "_get_test_params")


def _only_raises(body) -> bool:
    return all(isinstance(s, (ast.Raise, ast.Expr)) and (isinstance(s, ast.Raise) or _is_warning(s)) for s in body)


def _is_warning(stmt) -> bool:
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
            and getattr(stmt.value.func, "attr", getattr(stmt.value.func, "id", "")) == "warn")


def _skipped_subtrees(tree):
    """Nodes under which nothing is mutated: messages, docstrings, checks that only raise."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Raise, ast.Assert, ast.JoinedStr)):
            skipped.update(id(n) for n in ast.walk(node))
        elif isinstance(node, ast.If) and _only_raises(node.body) and not node.orelse:
            skipped.update(id(n) for n in ast.walk(node))
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in SKIPPED_CALLS:
                skipped.update(id(n) for n in ast.walk(node))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if any(w in node.name.lower() for w in SKIPPED_FUNCTIONS):
                skipped.update(id(n) for n in ast.walk(node))
            for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
                skipped.update(id(n) for n in ast.walk(default))  # a default is a setting, not a computation
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):  # docstrings
            skipped.add(id(node.value))
    return skipped


def _describe(node):
    """What mutating ``node`` does, or None for a node that is not a mutation site."""
    if isinstance(node, ast.BinOp) and type(node.op) in SWAPS:
        return f"{type(node.op).__name__} -> {SWAPS[type(node.op)].__name__}"
    if isinstance(node, ast.BoolOp):
        return f"{type(node.op).__name__} -> {SWAPS[type(node.op)].__name__}"
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in SWAPS:
        return f"{type(node.ops[0]).__name__} -> {SWAPS[type(node.ops[0])].__name__}"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and not isinstance(node.operand, ast.Constant):
        return "drop unary minus"
    if isinstance(node, ast.Constant) and not isinstance(node.value, bool) and isinstance(node.value, (int, float)):
        return f"{node.value!r} -> {_changed(node.value)!r}"
    return None


def _changed(value):
    return value + 1 if isinstance(value, int) else (value * 2 if value else 1.0)


def _sites(tree):
    skipped = _skipped_subtrees(tree)
    return [node for node in ast.walk(tree) if id(node) not in skipped and _describe(node) is not None]


def mutants(source: str):
    """Every plausible mutant of ``source``: (index, line, description); :func:`apply` builds one."""
    return [(i, node.lineno, _describe(node)) for i, node in enumerate(_sites(ast.parse(source)))]


def apply(source: str, index: int) -> str:
    """``source`` with mutant ``index`` of :func:`mutants` applied."""
    tree = ast.parse(source)
    node = _sites(tree)[index]
    if isinstance(node, (ast.BinOp, ast.BoolOp)):
        node.op = SWAPS[type(node.op)]()
    elif isinstance(node, ast.Compare):
        node.ops = [SWAPS[type(node.ops[0])]()]
    elif isinstance(node, ast.UnaryOp):
        node.op = ast.UAdd()
    else:
        node.value = _changed(node.value)
    return ast.unparse(tree)


def _copy_repo(dest: Path):
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest / f)
    (dest / "meanfield" / "solvers").symlink_to(dest / "solvers")


def _run_tests(root: Path, tests, timeout):
    env = dict(os.environ, PYTHONPATH=str(root), OPENBLAS_NUM_THREADS="1", NUMBA_CACHE_DIR=str(root / ".numba"))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests], cwd=root,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        outcome = "survived" if proc.returncode == 0 else "killed"
        last = out.strip().splitlines()[-1:] if out.strip() else [err[-200:]]
    except subprocess.TimeoutExpired:  # the whole session: Dask workers and CLI subprocesses of the tests too
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        outcome, last = "killed", ["timeout"]
    return outcome, time.perf_counter() - start, last[0] if last else ""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--module", action="append", help="a module of MODULES (default: all)")
    parser.add_argument("--sample", type=int, default=20, help="mutants drawn per module (default 20)")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index", type=int, action="append",
                        help="run this mutant (its index in the module's list, as in the report) instead of a sample")
    parser.add_argument("--out", default="results/mutation/report.json")
    args = parser.parse_args(argv)
    modules = args.module or list(MODULES)
    if args.index and len(modules) != 1:
        parser.error("--index needs exactly one --module (indices are per module)")
    report = {}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        roots = [Path(tmp) / f"copy{j}" for j in range(args.jobs)]
        for root in roots:
            _copy_repo(root)
        for module in modules:
            tests = [t for t in MODULES[module] if (roots[0] / t).exists()]
            source = (roots[0] / module).read_text()  # the copy's: the working tree may change meanwhile
            listed = mutants(source)
            chosen = ([listed[i] for i in args.index] if args.index else
                      sorted(random.Random(f"{args.seed}-{module}").sample(listed, min(args.sample, len(listed)))))
            for root in roots:  # the unmutated module, unparsed like the mutants: must pass
                (root / module).write_text(ast.unparse(ast.parse(source)))
            outcome, base_seconds, last = _run_tests(roots[0], tests, timeout=1800)
            if outcome != "survived":  # nothing to learn from mutants of this module: say so, go on with the next
                print(f"{module}: its tests fail without a mutant ({last}); skipped", flush=True)
                report[module] = dict(error=f"tests fail without a mutant: {last}")
                continue
            timeout = max(60.0, 3 * base_seconds)

            def run(job, mutant, module=module, source=source, tests=tests, timeout=timeout):
                index, line, what = mutant
                root = roots[job]
                (root / module).write_text(apply(source, index))
                outcome, seconds, last = _run_tests(root, tests, timeout)
                (root / module).write_text(source)
                return dict(index=index, line=line, change=what, outcome=outcome, seconds=round(seconds, 1),
                            tests=last)

            results = []
            with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
                free = list(range(args.jobs))
                pending = {}
                queue = list(chosen)
                while queue or pending:
                    while queue and free:
                        job = free.pop()
                        pending[pool.submit(run, job, queue.pop(0))] = job
                    done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                    for fut in done:
                        free.append(pending.pop(fut))
                        results.append(fut.result())
                        r = results[-1]
                        print(f"  {module}:{r['line']} {r['change']}: {r['outcome']} ({r['seconds']} s)", flush=True)
            killed = sum(r["outcome"] == "killed" for r in results)
            report[module] = dict(listed=len(listed), drawn=len(results), killed=killed, base_seconds=base_seconds,
                                  mutants=sorted(results, key=lambda r: r["index"]))
            print(f"{module}: {killed}/{len(results)} killed ({len(listed)} plausible mutants listed)", flush=True)
            out.write_text(json.dumps(report, indent=1))  # after each module: an interrupted run keeps its modules
    for module, r in report.items():
        print(f"{module:50s} {r['killed']:3d}/{r['drawn']:3d} killed")


if __name__ == "__main__":
    main()
