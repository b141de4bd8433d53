"""Run the SymPy scripts of theory_notes/ (each exits non-zero when a derivation step fails)."""

import subprocess
import sys
from pathlib import Path

import pytest

NOTES = Path(__file__).resolve().parents[1] / "theory_notes"


@pytest.mark.parametrize("script", sorted(NOTES.glob("check_*.py")), ids=lambda p: p.name)
def test_sympy_checks_pass(script):
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
