"""Keep the cyclic garbage collector from stalling key presses during a log flood.

Once the first data is on screen, what start-up built (Textual, the widgets, the modules) is
frozen out of the collector, so full collections skip it, and young objects are collected less
often: a flood allocates many short-lived objects, and every full collection would walk all of
start-up's too. docs/tui.md has the measurements.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 20_000  # allocations between young collections (CPython default: 700)


class GcTuning:
    def __init__(self) -> None:
        self._saved: tuple[int, ...] | None = None

    def apply(self) -> None:
        if self._saved is not None:
            return
        self._saved = gc.get_threshold()
        gc.collect()
        gc.freeze()
        gc.set_threshold(GEN0_THRESHOLD, *self._saved[1:])

    def restore(self) -> None:
        if self._saved is not None:
            gc.unfreeze()
            gc.set_threshold(*self._saved)
            self._saved = None
