"""Redaction cost (R-18, issue 8): lines/s through a Redactor with a test's registered secrets
and every pattern detector, against a raw baseline (the same loop without redaction).

    .venv/bin/python bench/bench_redact.py [--lines 200000]

Prints the throughput and the CPU share redaction would take at 100k lines/s.
"""

from __future__ import annotations

import argparse
import random
import string
import time

from agenttui.core.redact import Redactor


def sample_lines(count: int) -> list[str]:
    rng = random.Random(8)
    words = ["step", "calling", "model", "tool", "result", "token", "ok", "retry", "http", "json", "value"]
    lines = []
    for i in range(count):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(4, 18)))
        if i % 97 == 0:
            text += " id=AKIAIOSFODNN7EXAMPLE"
        if i % 131 == 0:
            text += " Authorization: Bearer " + "".join(rng.choices(string.ascii_letters, k=32))
        if i % 173 == 0:
            text += " key=sk-registered-secret-value-000"
        lines.append(f"[{i:07d}] {text}")
    return lines


def measure(func, lines: list[str]) -> float:
    started = time.perf_counter()
    for line in lines:
        func(line)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    lines = sample_lines(args.lines)
    redact = Redactor(["sk-registered-secret-value-000", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "hunter2-long"])
    baseline = min(measure(lambda line: line.replace("\x00", "\ufffd"), lines) for _ in range(3))
    cost = min(measure(redact, lines) for _ in range(3))
    rate = args.lines / cost
    print(f"lines: {args.lines:,} (avg {sum(map(len, lines)) / len(lines):.0f} chars)")
    print(f"baseline: {args.lines / baseline:,.0f} lines/s")
    print(f"redaction: {rate:,.0f} lines/s ({cost / baseline:.1f}x the baseline)")
    print(f"CPU at 100k lines/s: {100_000 / rate * 100:.0f}% of one core")


if __name__ == "__main__":
    main()
