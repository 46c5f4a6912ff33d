"""pipelines/length_table.py and pipelines/lexicon.py: their commands remake shipped data, so `--help` must only
print help and leave the shipped files as they are."""

import subprocess
import sys

import pytest

from pipelines.length_table import LENGTH_TABLE
from pipelines.lexicon import LEXICON
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize("module, shipped", [("pipelines.length_table", LENGTH_TABLE), ("pipelines.lexicon", LEXICON / "thresholds.json")])
def test_help_writes_nothing(module, shipped):
    before = shipped.read_bytes(), shipped.stat().st_mtime_ns
    done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--output" in done.stdout, done.stderr
    assert (shipped.read_bytes(), shipped.stat().st_mtime_ns) == before
