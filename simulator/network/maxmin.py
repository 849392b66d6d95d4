"""Weighted max-min fair rates of flows sharing links, by progressive filling (water-filling): raise the
rates of all unfrozen flows together, a link saturates when its load reaches its capacity, the flows crossing
it are frozen, repeat (Bertsekas & Gallager, "Data Networks", 2nd ed., sec. 6.5.2). A flow with multiplicity
m on a link counts m times in that link's constraint, which is the weighted variant of the same algorithm."""

import numpy as np

SATURATION_REL_TOL = 1e-12
"""Fill levels that agree to this relative precision count as equal in the water-filling."""


def max_min_rates(
    entry_link: np.ndarray, entry_mult: np.ndarray, entries_per_flow: np.ndarray, capacity_Bps: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted max-min fair rates by progressive filling (Bertsekas & Gallager 1992, sec. 6.5.2).

    The flow-link incidence is sparse: entries (index into `capacity_Bps`, multiplicity > 0) listed flow by
    flow, `entries_per_flow[f]` >= 1 of them for flow f. Returns (rate per flow, load per link), in bytes/s.

    Progressive filling freezes one saturation level per round, which takes as many rounds as there are
    distinct levels. Here each round freezes every link whose fill level is a local minimum (no flow crossing
    it has a link that saturates earlier) at once: filling elsewhere only adds load to, and removes unfrozen
    flows from, links that share a flow with the frozen ones, which can only raise their fill levels, so a
    local minimum saturates at the level it has now, as in the sequential order. The global minimum is always
    a local one, so every round freezes at least one flow.
    """
    if entries_per_flow.size == 1:
        return _one_flow_rates(entry_link, entry_mult, capacity_Bps)
    uncontended = _solo_rates_if_they_fit(entry_link, entry_mult, entries_per_flow, capacity_Bps)
    if uncontended is not None:
        return uncontended
    n_links = capacity_Bps.size
    rate_Bps = np.zeros(entries_per_flow.size)
    frozen_load_Bps = np.zeros(n_links)
    flows = np.arange(entries_per_flow.size)
    counts = entries_per_flow
    group = np.repeat(flows, counts)
    first = np.cumsum(counts) - counts
    link, mult = entry_link, entry_mult
    while link.size:
        weight = np.bincount(link, mult, minlength=n_links)
        level = np.divide(capacity_Bps - frozen_load_Bps, weight, out=np.full(n_links, np.inf), where=weight > 0)
        entry_level = level[link]
        flow_level = np.minimum.reduceat(entry_level, first)
        entry_flow_level = flow_level[group]
        blocked = np.zeros(n_links, dtype=bool)
        blocked[link[entry_flow_level < entry_level * (1.0 - SATURATION_REL_TOL)]] = True
        hit = np.zeros(flows.size, dtype=bool)
        hit[group[~blocked[link]]] = True
        rate_Bps[flows[hit]] = flow_level[hit]
        done = hit[group]
        frozen_load_Bps += np.bincount(link[done], mult[done] * entry_flow_level[done], minlength=n_links)
        link, mult = link[~done], mult[~done]
        flows, counts = flows[~hit], counts[~hit]
        group = np.repeat(np.arange(flows.size), counts)
        first = np.cumsum(counts) - counts
    assert np.all(rate_Bps > 0.0), "every flow crosses a link of positive capacity"
    return rate_Bps, frozen_load_Bps


def _one_flow_rates(
    entry_link: np.ndarray, entry_mult: np.ndarray, capacity_Bps: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """max_min_rates of a single flow: the first round of the filling, which freezes it at its bottleneck,
    with the same operations (so the same bits) and none of the book-keeping between rounds."""
    weight = np.bincount(entry_link, entry_mult, minlength=capacity_Bps.size)
    rate_Bps = (capacity_Bps[entry_link] / weight[entry_link]).min(keepdims=True)
    assert rate_Bps[0] > 0.0, "every flow crosses a link of positive capacity"
    load_Bps = np.zeros(capacity_Bps.size)
    load_Bps += np.bincount(entry_link, entry_mult * rate_Bps[0], minlength=capacity_Bps.size)
    return rate_Bps, load_Bps


def _solo_rates_if_they_fit(
    entry_link: np.ndarray, entry_mult: np.ndarray, entries_per_flow: np.ndarray, capacity_Bps: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """(rates, loads) when every flow can have its solo rate (its bottleneck alone: min over its links of
    capacity / multiplicity) and every link two flows share keeps room to spare at those rates; else
    None. No flow can go faster than alone, so feasible solo rates are the max-min allocation, and the
    filling would get each from the same capacity / multiplicity of a link the flow has to itself: the
    same bits. Flows that meet only on links with room (a fat-tree's upper tiers, where adaptive routing
    spreads every transfer thin) then cost one pass instead of a filling."""
    first = np.cumsum(entries_per_flow) - entries_per_flow
    rate_Bps = np.minimum.reduceat(capacity_Bps[entry_link] / entry_mult, first)
    load_Bps = np.bincount(entry_link, entry_mult * np.repeat(rate_Bps, entries_per_flow), minlength=capacity_Bps.size)
    shared = np.bincount(entry_link, minlength=capacity_Bps.size) > 1  # a flow crosses a link once
    if np.all(load_Bps[shared] < capacity_Bps[shared] * (1.0 - SATURATION_REL_TOL)):
        return rate_Bps, load_Bps
    return None
