"""The headless client's own cost (issue 17): its start, and the end of a test reaching it.

Three figures from the same runs (medians), each with a raw baseline:
- `import agenttui.cli` as `python -X importtime` reports it, and the whole `agenttui show`
  of a finished test (a request to the running personal server), both vs `python -c pass`;
- agent return → client exit: the agent prints the time just before it returns, and the
  `agenttui submit` that follows it exits; vs the same stamp in a `docker run --rm` of the same
  image, to the exit of `docker run` (containers share the host's clock).
bench/run.py uses `measure` for figure 13 of the suite.

    .venv/bin/python bench/bench_client.py [--runs 7] [--image agenttui-base:bookworm]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import AGENTTUI, DEFAULT_IMAGE, BenchEnv, median, timed  # noqa: E402

STAMP = "import time; print('returning %.6f' % time.time(), flush=True)"
AGENT = f"def run(query):\n    {STAMP}\n    return 'ok'\n"


def import_cli_s(env: dict[str, str]) -> float:
    """`import agenttui.cli`'s cumulative time, from `python -X importtime`."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import agenttui.cli"], env=env,
                          capture_output=True, text=True, check=True)
    for line in done.stderr.splitlines():
        parts = [part.strip() for part in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == "agenttui.cli":
            return int(parts[1]) / 1e6
    raise RuntimeError("python -X importtime did not report agenttui.cli")


def return_to_exit_s(cmd: list[str], env: dict[str, str]) -> float:
    """From the agent's stamp (printed as it returns) to the command's exit."""
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    exited = time.time()
    stamps = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("returning ")]
    if done.returncode != 0 or not stamps:
        raise RuntimeError(f"{cmd[0]} exited {done.returncode} without the agent's stamp: {done.stderr[-300:]}")
    return exited - float(stamps[-1])


def installed_env(bench: BenchEnv) -> dict[str, str]:
    """The environment with compiled modules kept, as an installed agenttui has them (in a
    throwaway folder: PYTHONDONTWRITEBYTECODE would compile every module on every start)."""
    env = {key: value for key, value in bench.env.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return env | {"PYTHONPYCACHEPREFIX": str(bench.root / "pycache")}


def measure(bench: BenchEnv, runs: int) -> dict[str, list[float]]:
    agent = bench.agent(AGENT, name="stamp_agent.py")
    env = installed_env(bench)
    tool_cmd = [AGENTTUI, "submit", str(agent), "--query", "x", "--egress", "none"]
    raw_cmd = ["docker", "run", "--rm", "--label", f"agenttui.bench={bench.run_id}", bench.image,
               "python3", "-c", STAMP]
    return_to_exit_s(tool_cmd, env)  # the server started, the image built: not measured
    return_to_exit_s(raw_cmd, env)
    import_cli_s(env)  # modules compiled once, as an install does
    result: dict[str, list[float]] = {key: [] for key in ("import", "show", "pass", "tool_end", "raw_end")}
    for _ in range(runs):
        result["import"].append(import_cli_s(env))
        result["show"].append(timed([AGENTTUI, "show", "1"], env))
        result["pass"].append(timed([sys.executable, "-c", "pass"], env))
        result["tool_end"].append(return_to_exit_s(tool_cmd, env))
        result["raw_end"].append(return_to_exit_s(raw_cmd, env))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    args = parser.parse_args()
    bench = BenchEnv(args.image)
    bench.activate()
    try:
        m = measure(bench, args.runs)
    finally:
        bench.close()
    for key, values in m.items():
        print(f"{key:<10}{median(values) * 1000:>10.1f} ms median  {min(values) * 1000:>8.1f} min")


if __name__ == "__main__":
    main()
