"""A one-line progress bar on stderr for long runs: search, explain, validate (redrawn in place on a terminal)."""

import sys
import time
from typing import TextIO

REDRAW_S = 0.25  # at most four redraws a second


class Progress:
    def __init__(self, total: int, label: str, enabled: bool, stream: TextIO | None = None, width: int = 30) -> None:
        self.total, self.label, self.enabled, self.width = total, label, enabled and total > 0, width
        self.stream = stream or sys.stderr
        self.done = 0
        self.start_s = self.drawn_s = time.monotonic()
        if self.enabled:  # at once: the first step may take long (a large explain's first simulation)
            self._draw(end="")

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.enabled and time.monotonic() - self.drawn_s >= REDRAW_S:
            self._draw(end="")

    def close(self) -> None:
        if self.enabled:
            self._draw(end="\n")

    def _draw(self, end: str) -> None:
        self.drawn_s = time.monotonic()
        elapsed_s = self.drawn_s - self.start_s
        filled = round(self.width * self.done / self.total)
        eta = ""
        if 0 < self.done < self.total:
            eta = f", about {elapsed_s / self.done * (self.total - self.done):.0f} s left"
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total}, {elapsed_s:.0f} s{eta}  {end}")
        self.stream.flush()
