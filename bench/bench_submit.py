"""agenttui submit (waiting for the result) vs a raw `docker run --rm` of the same image.

Prints the median wall time of each over N interleaved repetitions and their ratio
(target: <= 2.0). Runs in a throwaway XDG directory so no real store is touched.

    .venv/bin/python bench/bench_submit.py [--runs 7] [--image agenttui-base:bookworm]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AGENT = "def run(query):\n    return 'pong: ' + query\n"


def timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"command failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--image", default=os.environ.get("AGENTTUI_BASE_IMAGE", "agenttui-base:bookworm"))
    args = parser.parse_args()
    agenttui = str(Path(sys.executable).parent / "agenttui")
    with tempfile.TemporaryDirectory(prefix="agenttui-bench-") as tmp:
        env = {**os.environ, "AGENTTUI_BASE_IMAGE": args.image}
        for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"):
            env[var] = str(Path(tmp) / var.lower())
        agent = Path(tmp) / "agent.py"
        agent.write_text(AGENT)
        raw_cmd = ["docker", "run", "--rm", args.image, "python3", "-c", "print('pong: ping')"]
        tool_cmd = [agenttui, "submit", str(agent), "--query", "ping", "--json"]
        timed(raw_cmd, env)  # warm caches once each, not measured
        timed(tool_cmd, env)
        raw, tool = [], []
        for _ in range(args.runs):
            raw.append(timed(raw_cmd, env))
            tool.append(timed(tool_cmd, env))
    raw_median, tool_median = statistics.median(raw), statistics.median(tool)
    ratio = tool_median / raw_median
    print(f"{'measure':<34}{'median s':>10}{'min s':>9}{'max s':>9}")
    print(f"{'docker run --rm (baseline)':<34}{raw_median:>10.3f}{min(raw):>9.3f}{max(raw):>9.3f}")
    print(f"{'agenttui submit --json (waits)':<34}{tool_median:>10.3f}{min(tool):>9.3f}{max(tool):>9.3f}")
    print(f"ratio agenttui / docker run: {ratio:.2f}  (target <= 2.0, {'met' if ratio <= 2.0 else 'NOT met'})")


if __name__ == "__main__":
    main()
