"""CI smoke test of the benchmark suite: `bench/run.py --quick` runs every figure end to end.

No threshold is asserted (machines are noisy; the figures live in bench/ and the README):
only that the suite completes and prints a row for every figure, none of them an error.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
ROWS = ("1a", "1b", "2", "3", "4", "5a", "5b", "6", "7a", "7b", "7c", "8a", "8b", "9", "10a", "10b", "12", "13a", "13b",
        "16a", "16b", "16c", "17", "18", "19")


def test_the_quick_benchmark_suite_completes_and_prints_every_row():
    result = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--quick"],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {m.group(1): line for line in result.stdout.splitlines()
            if (m := re.match(r"\| (\d+[a-c]?) ", line))}
    assert sorted(rows) == sorted(ROWS), result.stdout
    for figure, line in rows.items():
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == 6, line
        assert "error:" not in cells[1], line  # the figure ran (no target is checked)
        assert cells[5] in ("met", "NOT met", "n/a"), line
    assert "agenttui benchmarks, quick" in result.stdout
    assert re.search(r"^agenttui benchmarks, .*; load \d+\.\d before, \d+\.\d after$", result.stdout, re.M), \
        result.stdout
