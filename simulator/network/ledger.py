"""Bytes carried per link, accumulated lazily: a diagnostic that the engine never reads."""

import numpy as np

REPLAY_AT = 1 << 22
"""Queued values (array elements) beyond which updates are applied at once, bounding the memory held."""


class LinkLedger:
    """`totals[l]`: bytes carried by link l so far. Each update is queued and the queue is replayed, in
    order, when `totals` is read: every link sums the same terms in the same order as if each update had
    been applied when made, so the totals are bit-for-bit the same, while a simulation that never reads
    them skips the work (adding each solo flow's bytes to its ~10^3 links was a tenth of the engine)."""

    def __init__(self, num_links: int) -> None:
        self._totals = np.zeros(num_links)
        self._queue: list[tuple[np.ndarray | slice, np.ndarray, float | None]] = []
        self._queued = 0

    @property
    def totals(self) -> np.ndarray:
        self._replay()
        return self._totals

    def add(self, links: np.ndarray | slice, values: np.ndarray, scale: float) -> None:
        """totals[links] += values * scale; `links` distinct (or a slice), `values` not modified later."""
        self._push((links, values, scale), values.size)

    def add_at(self, links: np.ndarray, values: np.ndarray) -> None:
        """np.add.at(totals, links, values): `links` may repeat."""
        self._push((links, values, None), values.size)

    def _push(self, update: tuple[np.ndarray | slice, np.ndarray, float | None], size: int) -> None:
        self._queue.append(update)
        self._queued += size
        if self._queued > REPLAY_AT:
            self._replay()

    def _replay(self) -> None:
        for links, values, scale in self._queue:
            if scale is None:
                np.add.at(self._totals, links, values)
            else:
                self._totals[links] += values * scale
        self._queue.clear()
        self._queued = 0
