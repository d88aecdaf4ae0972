"""How long generating a deployment package takes (target: well under a second, < 200 ms).

    .venv/bin/python bench/bench_package.py [-n 50] [--provider bedrock]

Prints the cold figure (first package of a process: templates compiled) and the median /
p95 of N warm ones, for a typical agent (requirements, metrics, a few environment reads).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGET_S = 0.200


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=50, help="warm runs (default 50)")
    parser.add_argument("--provider", default="bedrock", choices=["ollama", "bedrock", "openai"])
    args = parser.parse_args()

    started = time.perf_counter()
    from agenttui.packaging import build_package  # noqa: E402 (timed: the import is part of cold)
    from tests.unit.test_packaging_build import package_record  # noqa: E402

    import_s = time.perf_counter() - started
    record = package_record(args.provider, requirements="boto3\nrequests>=2.31\n")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        started = time.perf_counter()
        first = build_package(record, out / "cold", base_image="agenttui-base:bookworm")
        cold_s = time.perf_counter() - started
        times = []
        for i in range(args.n):
            started = time.perf_counter()
            build_package(record, out / str(i % 4), base_image="agenttui-base:bookworm")
            times.append(time.perf_counter() - started)
    times.sort()
    median = statistics.median(times)
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    print(f"package: {first.path.name} ({first.size:,} bytes, {len(first.files)} files, provider {args.provider})")
    print(f"import agenttui.packaging: {import_s * 1000:.1f} ms")
    print(f"cold (first package, templates compiled): {cold_s * 1000:.1f} ms")
    print(f"warm median of {args.n}: {median * 1000:.2f} ms   p95: {p95 * 1000:.2f} ms   max: {times[-1] * 1000:.2f} ms")
    print(f"target < {TARGET_S * 1000:.0f} ms: {'met' if max(cold_s, median) < TARGET_S else 'MISSED'}"
          f" (cold is {TARGET_S / cold_s:.0f}x under, warm {TARGET_S / median:.0f}x under)")
    return 0 if max(cold_s, median) < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
