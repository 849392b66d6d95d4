"""Bytes carried per link, accumulated lazily: a diagnostic that the engine never reads."""

import numpy as np

MAX_HELD = 1 << 22
"""Array elements the queue may keep alive (that nothing else holds) before it is replayed."""

MAX_QUEUED = 1 << 18
"""Updates the queue may hold before it is replayed."""


class LinkLedger:
    """`totals[l]`: bytes carried by link l so far. Each update is queued and the queue is replayed, in
    order, when `totals` is read: every link sums the same terms in the same order as if each update had
    been applied when made, so the totals are bit-for-bit the same, while a simulation that never reads
    them skips the work (adding each solo flow's bytes to its ~10^3 links was a tenth of the engine)."""

    def __init__(self, num_links: int) -> None:
        self._totals = np.zeros(num_links)
        self._queue: list[tuple[np.ndarray | slice, np.ndarray, float | None]] = []
        self._held = 0
        self._last: np.ndarray | None = None

    @property
    def totals(self) -> np.ndarray:
        self._replay()
        return self._totals

    def add(self, links: np.ndarray | slice, values: np.ndarray, scale: float, *, shared: bool = False) -> None:
        """totals[links] += values * scale; `links` distinct (or a slice); neither array modified later.
        `shared`: the arrays live on anyway (a link set's); else consecutive updates with the same
        `values` array count it once."""
        self._queue.append((links, values, scale))
        if not shared:
            if values is not self._last:
                self._held += values.size
            self._last = values
        if self._held > MAX_HELD or len(self._queue) > MAX_QUEUED:
            self._replay()

    def add_at(self, links: np.ndarray, values: np.ndarray) -> None:
        """np.add.at(totals, links, values): `links` may repeat."""
        self._queue.append((links, values, None))
        self._held += links.size + values.size
        if self._held > MAX_HELD or len(self._queue) > MAX_QUEUED:
            self._replay()

    def _replay(self) -> None:
        for links, values, scale in self._queue:
            if scale is None:
                assert isinstance(links, np.ndarray), "add_at takes an index array"
                np.add.at(self._totals, links, values)
            else:
                self._totals[links] += values * scale
        self._queue.clear()
        self._held = 0
        self._last = None
