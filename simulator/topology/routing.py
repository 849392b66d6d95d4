"""Deterministic GPU-to-GPU routing on a topology's plain link tables, for many pairs at once.

Routes follow the servers-plus-Clos shape of the builders: GPU -> NVSwitch -> GPU inside an NVLink
domain (one server, or the compute trays of a rack-scale NVLink domain sharing one NVSwitch node),
else GPU -> NIC -> leaf [-> spine -> leaf] -> NIC -> GPU, the spine chosen by D-mod-K (Zahavi;
OpenSM ftree): the destination NIC's global index mod the spines that connect the two leaves, in
spine index order. Every neighbour is read from the links as the graph would give it (a node's
first successor over a link of the kind, in link order), so routes do not need a networkx graph.
A physical link i is directed links 2i (u -> v) and 2i + 1 (v -> u): `id ^ 1` is the way back (the
builders never connect two nodes twice, so that is the graph's edge v -> u).
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from simulator.topology.kinds import Link, LinkKind

MAX_HOPS = 6  # GPU -> NIC -> leaf -> spine -> leaf -> NIC -> GPU
NONE = -1  # no such link or node in a table
_CODE = {kind: code for code, kind in enumerate(LinkKind)}


class Router:
    """Per-GPU access links (to its NVSwitch, NIC and leaf) and the leaf-to-spine uplink matrix."""

    def __init__(self, nodes: Sequence[tuple[str, dict[str, Any]]], links: Sequence[Link], num_gpus: int) -> None:
        self.names = [name for name, _ in nodes]
        node_id = {name: i for i, name in enumerate(self.names)}
        index = np.array([attrs.get("index", 0) for _, attrs in nodes], dtype=np.intp)
        src = np.array([node_id[u] for u, *_ in links], dtype=np.intp)
        dst = np.array([node_id[v] for _, v, *_ in links], dtype=np.intp)
        self._kind = np.repeat(np.array([_CODE[link[4]] for link in links], dtype=np.intp), 2)  # per directed link
        self._src = np.stack((src, dst), axis=1).ravel()  # directed link id -> its source node
        self._dst = np.stack((dst, src), axis=1).ravel()
        self.num_gpus = num_gpus
        self.gpu = np.array([node_id.get(f"gpu{g}", NONE) for g in range(num_gpus)], dtype=np.intp)
        self.nvs, self.to_nvs = self._first_hop(self.gpu, LinkKind.NVLINK)
        nic, self.to_nic = self._first_hop(self.gpu, LinkKind.PCIE)
        self.leaf, nic_up = self._first_hop(nic, LinkKind.NIC)
        self.nic = nic
        self.nic_up = nic_up
        self.nic_index = np.where(nic >= 0, index[nic], NONE)
        self._uplinks(index)

    def _first_hop(self, nodes: np.ndarray, kind: LinkKind) -> tuple[np.ndarray, np.ndarray]:
        """For each node (NONE stays NONE): its first successor over a link of `kind` and that link's id."""
        ids = np.flatnonzero(self._kind == _CODE[kind])
        srcs = self._src[ids]
        # np.unique's index is the first occurrence: the lowest link id, the graph's successor order
        firsts, at = np.unique(srcs, return_index=True)
        link_of = np.full(len(self.names), NONE, dtype=np.intp)
        link_of[firsts] = ids[at]
        link = np.where(nodes >= 0, link_of[nodes], NONE)
        return np.where(link >= 0, self._dst[link], NONE), link

    def _uplinks(self, index: np.ndarray) -> None:
        """`up[row(leaf), column(spine)]`: id of the uplink leaf -> spine (NONE without one); columns in
        spine index order. Links are full duplex, so spine -> leaf is that id ^ 1."""
        leaves = _members(self.leaf[self.leaf >= 0], len(self.names))
        self._leaf_row = np.full(len(self.names), NONE, dtype=np.intp)
        self._leaf_row[leaves] = np.arange(leaves.size)
        is_up = self._kind == _CODE[LinkKind.UPLINK]
        ids = np.flatnonzero(is_up & (self._leaf_row[self._src] >= 0))
        spines = _members(self._dst[ids], len(self.names))
        spines = spines[np.argsort(index[spines], kind="stable")]
        column = np.full(len(self.names), NONE, dtype=np.intp)
        column[spines] = np.arange(spines.size)
        self._up = np.full((leaves.size, spines.size), NONE, dtype=np.intp)
        self._up[self._leaf_row[self._src[ids]], column[self._dst[ids]]] = ids
        self._spines = spines

    def _check_gpus(self, src: np.ndarray, dst: np.ndarray) -> None:
        for gpus in (src, dst):
            bad = gpus[(gpus < 0) | (gpus >= self.num_gpus)]
            if bad.size:
                raise ValueError(f"GPU {bad[0]} is not in this {self.num_gpus}-GPU topology")

    def routes(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """(pairs, MAX_HOPS) directed link ids of each route, in hop order, padded with NONE."""
        self._check_gpus(src, dst)
        out = np.full((src.size, MAX_HOPS), NONE, dtype=np.intp)
        moving = src != dst
        s, d = src[moving], dst[moving]
        self._require(self.nvs, s, d, LinkKind.NVLINK)
        rows = np.flatnonzero(moving)
        local = self.nvs[s] == self.nvs[d]
        out[rows[local], 0] = self.to_nvs[s[local]]
        out[rows[local], 1] = self.to_nvs[d[local]] ^ 1
        if not local.all():
            self._scale_out(out, rows[~local], s[~local], d[~local])
        return out

    def loads(self, src: np.ndarray, dst: np.ndarray, weights: np.ndarray, num_links: int) -> np.ndarray:
        """Per directed link, the summed weights of the routes of the pairs (src[i], dst[i]) that cross
        it: what `routes` gives, without a row per pair. The access links (NVLink, PCIe, NIC) are
        counted pair by pair; the leaf -> spine -> leaf hops depend only on the source leaf and the
        destination GPU, so each such pair is routed once (an all-to-all of 16k GPUs has 4M pairs
        and ~100k of those)."""
        self._check_gpus(src, dst)
        out = np.zeros(num_links)
        moving = src != dst
        s, d, w = src[moving], dst[moving], weights[moving]
        self._require(self.nvs, s, d, LinkKind.NVLINK)
        local = self.nvs[s] == self.nvs[d]
        for ids in (self.to_nvs[s[local]], self.to_nvs[d[local]] ^ 1):
            out += np.bincount(ids, w[local], minlength=num_links)
        s, d, w = s[~local], d[~local], w[~local]
        if not s.size:
            return out
        self._require(self.nic, s, d, LinkKind.PCIE)
        self._require(self.leaf, s, d, LinkKind.NIC, via=self.nic)
        for ids in (self.to_nic[s], self.nic_up[s], self.nic_up[d] ^ 1, self.to_nic[d] ^ 1):
            out += np.bincount(ids, w, minlength=num_links)
        far = self.leaf[s] != self.leaf[d]
        if far.any():
            keys, at = np.unique(self.leaf[s[far]] * self.num_gpus + d[far], return_inverse=True)
            leaf_s, dst_gpu = np.divmod(keys, self.num_gpus)
            hops = self._via_spine(leaf_s, self.leaf[dst_gpu], self.nic_index[dst_gpu])
            per_key = np.bincount(at, w[far], minlength=keys.size)
            for column in hops.T:
                out += np.bincount(column, per_key, minlength=num_links)
        return out

    def _scale_out(self, out: np.ndarray, rows: np.ndarray, s: np.ndarray, d: np.ndarray) -> None:
        self._require(self.nic, s, d, LinkKind.PCIE)
        self._require(self.leaf, s, d, LinkKind.NIC, via=self.nic)
        out[rows, 0], out[rows, 1] = self.to_nic[s], self.nic_up[s]
        out[rows, 4], out[rows, 5] = self.nic_up[d] ^ 1, self.to_nic[d] ^ 1
        far = self.leaf[s] != self.leaf[d]
        if far.any():
            out[rows[far], 2:4] = self._via_spine(self.leaf[s[far]], self.leaf[d[far]], self.nic_index[d[far]])
        out[rows[~far], 2:4] = out[rows[~far], 4:6]  # same leaf: the route is four links
        out[rows[~far], 4:6] = NONE

    def _via_spine(self, leaf_s: np.ndarray, leaf_d: np.ndarray, nic_index: np.ndarray) -> np.ndarray:
        """(pairs, 2) link ids leaf_s -> spine -> leaf_d, the spine by D-mod-K among the common ones."""
        up_s, up_d = self._up[self._leaf_row[leaf_s]], self._up[self._leaf_row[leaf_d]]
        common = (up_s >= 0) & (up_d >= 0)
        count = common.sum(axis=1)
        if not count.all():
            i = np.flatnonzero(count == 0)[0]
            raise ValueError(f"no spine connects {self.names[leaf_s[i]]} to {self.names[leaf_d[i]]}")
        pick = np.argmax(np.cumsum(common, axis=1) > (nic_index % count)[:, None], axis=1)
        at = np.arange(pick.size)
        return np.stack((up_s[at, pick], up_d[at, pick] ^ 1), axis=1)

    def _require(
        self, table: np.ndarray, s: np.ndarray, d: np.ndarray, kind: LinkKind, via: np.ndarray | None = None
    ) -> None:
        """Raise, naming the node, when a GPU of the pairs has no link of `kind` to route over."""
        for gpus in (s, d):
            missing = gpus[table[gpus] < 0]
            if missing.size:
                g = int(missing[0])
                node = self.gpu[g] if via is None else via[g]
                name = f"gpu{g}" if node < 0 else self.names[node]
                raise ValueError(f"{name} has no {kind} link: the topology cannot route from it")


def _members(nodes: np.ndarray, num_nodes: int) -> np.ndarray:
    """The distinct node ids in `nodes`, ascending (np.unique without its lazy import of numpy.ma)."""
    present = np.zeros(num_nodes, dtype=bool)
    present[nodes] = True
    return np.flatnonzero(present)
