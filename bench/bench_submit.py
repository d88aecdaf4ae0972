"""agenttui submit vs a raw `docker run --rm` of the same image, for a trivial agent.

Two figures from the same runs (N interleaved repetitions, medians): the time to the agent's
first output line on the terminal (target <= 1.5x the raw run), and the whole command, which
waits for the result (target <= 2.0x). Runs in a throwaway XDG directory with egress 'none';
the personal server is started (and warmed) once, as a user's first command would.
bench/run.py uses `measure` for figure 1 of the suite.

    .venv/bin/python bench/bench_submit.py [--runs 7] [--image agenttui-base:bookworm]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import AGENTTUI, DEFAULT_IMAGE, BenchEnv, first_line_and_exit, median  # noqa: E402

AGENT = "def run(query):\n    print('first output', flush=True)\n    return 'pong: ' + query\n"
RAW_PROGRAM = "print('first output', flush=True); print('pong: ping')"


def measure(bench: BenchEnv, runs: int, egress: str = "none") -> dict[str, list[float]]:
    """Seconds to the first output line and to the exit, for agenttui and the raw baseline."""
    agent = bench.agent(AGENT, name="trivial_agent.py")
    raw_cmd = ["docker", "run", "--rm", "--label", f"agenttui.bench={bench.run_id}", bench.image,
               "python3", "-c", RAW_PROGRAM]
    tool_cmd = [AGENTTUI, "submit", str(agent), "--query", "ping", "--egress", egress]
    first_line_and_exit(raw_cmd, bench.env, "first output")  # warm caches once each, not measured
    first_line_and_exit(tool_cmd, bench.env, "first output")
    result: dict[str, list[float]] = {"raw_first": [], "raw_whole": [], "tool_first": [], "tool_whole": []}
    for _ in range(runs):
        for name, cmd in (("raw", raw_cmd), ("tool", tool_cmd)):
            first, whole = first_line_and_exit(cmd, bench.env, "first output")
            result[f"{name}_first"].append(first)
            result[f"{name}_whole"].append(whole)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    args = parser.parse_args()
    bench = BenchEnv(args.image)
    try:
        m = measure(bench, args.runs)
    finally:
        bench.close()
    print(f"{'measure':<44}{'median s':>10}{'min s':>9}{'max s':>9}")
    for label, key in (("docker run --rm: first output (baseline)", "raw_first"),
                       ("agenttui submit: first output", "tool_first"),
                       ("docker run --rm: whole run (baseline)", "raw_whole"),
                       ("agenttui submit: whole run (waits)", "tool_whole")):
        values = m[key]
        print(f"{label:<44}{median(values):>10.3f}{min(values):>9.3f}{max(values):>9.3f}")
    for label, key, target in (("first output", "first", 1.5), ("whole run", "whole", 2.0)):
        ratio = median(m[f"tool_{key}"]) / median(m[f"raw_{key}"])
        print(f"ratio agenttui / docker run, {label}: {ratio:.2f}  (target <= {target}, "
              f"{'met' if ratio <= target else 'NOT met'})")


if __name__ == "__main__":
    main()
