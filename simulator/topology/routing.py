"""GPU-to-GPU routes and link loads on a topology's plain link tables, for many pairs at once.

Routes follow the servers-plus-fat-tree shape of the builders: GPU -> NVSwitch -> GPU inside an NVLink
domain (one server, or the compute trays of a rack-scale NVLink domain sharing one NVSwitch node),
else GPU -> NIC -> leaf [-> spine [-> core -> spine] -> leaf] -> NIC -> GPU. The switch tiers are
seen two ways:

- `routes`, one path per pair: D-mod-K (Zahavi; OpenSM ftree), the leaf's uplink j = d mod K1 (d the
  destination NIC's global index, K1 the leaf's uplinks, spines in index order) and, between pods,
  the spine's uplink (d // K1) mod K2 (K2 its core uplinks): the path a packet takes under static
  routing. Every minimal path has the same hops and link latencies, so this one gives them.
- `loads`, the traffic on each link: fat-trees of this class route adaptively, each switch sending a
  packet out of the least loaded port that is on a minimal path to its destination (NVIDIA
  InfiniBand Cluster Bring-up Procedure, "Adaptive Routing": AR groups of the TREE kind, all ports
  with minimal hops to the destination; enabled by default in opensm.conf; NCCL uses it by default
  on InfiniBand, NCCL_IB_ADAPTIVE_ROUTING). Its fluid limit spreads every transfer evenly over its
  minimal paths: 1/K1 of it on each uplink of its leaf and on each downlink into the destination
  leaf, and between pods 1/(K1 K2) on each spine<->core link of the two pods. Access links (NVLink,
  PCIe, NIC) carry whole transfers. Static D-mod-K is contention-free for one shift permutation but
  not for two at once: two rings leaving one leaf towards NICs at the same port position of their
  leaves (two pipeline stages sharing a leaf) queue on one uplink while the others idle, which no
  adaptively routed fabric does.

Every neighbour is read from the links as the graph would give it (a node's first successor over a
link of the kind, in link order), so routes do not need a networkx graph. A physical link i is
directed links 2i (u -> v) and 2i + 1 (v -> u): `id ^ 1` is the way back (the builders never connect
two nodes twice, so that is the graph's edge v -> u).
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from simulator.topology.kinds import Link, LinkKind

MAX_HOPS = 8  # GPU -> NIC -> leaf -> spine -> core -> spine -> leaf -> NIC -> GPU
NONE = -1  # no such link or node in a table
_CODE = {kind: code for code, kind in enumerate(LinkKind)}


class Router:
    """Per-GPU access links (to its NVSwitch, NIC and leaf), each leaf's uplinks to its spines and each
    spine's uplinks to its cores (in switch index order)."""

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
        leaves = _members(self.leaf[self.leaf >= 0], len(self.names))
        self._leaf_row, self._up = self._uplinks(leaves, LinkKind.UPLINK, index)
        spines = _members(self._dst[self._up.ravel()], len(self.names))
        self._spine_row, self._core_up = self._uplinks(spines, LinkKind.CORE, index)
        # the spine row of every leaf uplink's far end, and of each leaf's first spine (its pod's key)
        self._up_spine = self._spine_row[self._dst[self._up]] if self._up.size else self._up
        self._pod = self._up_spine[:, 0] if self._up.shape[1] else np.zeros(leaves.size, dtype=np.intp)

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

    def _uplinks(self, switches: np.ndarray, kind: LinkKind, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row of every node: its position in `switches`, or NONE; `up[row, j]`: id of the j-th `kind` link
        out of that switch, far ends in index order). Every switch of a tier has as many uplinks (the
        builders' fat-trees); links are full duplex, so the way down is `id ^ 1`."""
        row = np.full(len(self.names), NONE, dtype=np.intp)
        row[switches] = np.arange(switches.size)
        ids = np.flatnonzero((self._kind == _CODE[kind]) & (row[self._src] >= 0))
        ids = ids[np.lexsort((index[self._dst[ids]], row[self._src[ids]]))]
        per_switch = ids.size // max(switches.size, 1)
        assert ids.size == per_switch * switches.size, f"every switch of a tier has as many {kind} links"
        return row, ids.reshape(switches.size, per_switch)

    def _check_gpus(self, src: np.ndarray, dst: np.ndarray) -> None:
        for gpus in (src, dst):
            bad = gpus[(gpus < 0) | (gpus >= self.num_gpus)]
            if bad.size:
                raise ValueError(f"GPU {bad[0]} is not in this {self.num_gpus}-GPU topology")

    def routes(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """(pairs, MAX_HOPS) directed link ids of each D-mod-K route, in hop order, padded with NONE."""
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
        # hops in order, the NONE of a shorter route last
        return np.take_along_axis(out, np.argsort(out < 0, axis=1, kind="stable"), axis=1)

    def loads(self, src: np.ndarray, dst: np.ndarray, weights: np.ndarray, num_links: int) -> np.ndarray:
        """Per directed link, the summed weights of the transfers (src[i], dst[i]) that cross it: whole on
        the access links (NVLink, PCIe, NIC), spread evenly over the minimal paths across the switch
        tiers (adaptive routing, module docstring). Pairs within one leaf stop at the leaf."""
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
            self._spread(out, self._leaf_row[self.leaf[s[far]]], self._leaf_row[self.leaf[d[far]]], w[far])
        return out

    def _spread(self, out: np.ndarray, leaf_s: np.ndarray, leaf_d: np.ndarray, w: np.ndarray) -> None:
        """Add to `out` the switch-tier loads of transfers of weights `w` between leaf rows leaf_s != leaf_d:
        w / K1 on every uplink of the source leaf and every downlink into the destination leaf, and
        between pods w / (K1 K2) on every spine -> core link of the source pod and core -> spine link of
        the destination pod (each pod's spine j reaches the same K2 cores, group j)."""
        n_leaves, k1 = self._up.shape
        if k1 == 0:
            raise ValueError(f"no spine connects {self.names[int(self._first_leaf(leaf_s))]} to another leaf")
        num_links = out.size
        per_leaf = np.bincount(leaf_s, w, minlength=n_leaves) / k1
        out += np.bincount(self._up.ravel(), np.repeat(per_leaf, k1), minlength=num_links)
        per_leaf = np.bincount(leaf_d, w, minlength=n_leaves) / k1
        out += np.bincount(self._up.ravel() ^ 1, np.repeat(per_leaf, k1), minlength=num_links)
        cross = self._pod[leaf_s] != self._pod[leaf_d]
        if not cross.any():
            return
        n_spines, k2 = self._core_up.shape
        for leaves, way in ((leaf_s, 0), (leaf_d, 1)):
            per_leaf = np.bincount(leaves[cross], w[cross], minlength=n_leaves) / k1
            per_spine = np.bincount(self._up_spine.ravel(), np.repeat(per_leaf, k1), minlength=n_spines) / k2
            out += np.bincount(self._core_up.ravel() ^ way, np.repeat(per_spine, k2), minlength=num_links)

    def _first_leaf(self, rows: np.ndarray) -> int:
        """The node id of the leaf of the first of `rows` (for error messages)."""
        return int(np.flatnonzero(self._leaf_row == rows[0])[0])

    def _scale_out(self, out: np.ndarray, rows: np.ndarray, s: np.ndarray, d: np.ndarray) -> None:
        self._require(self.nic, s, d, LinkKind.PCIE)
        self._require(self.leaf, s, d, LinkKind.NIC, via=self.nic)
        out[rows, 0], out[rows, 1] = self.to_nic[s], self.nic_up[s]
        out[rows, 6], out[rows, 7] = self.nic_up[d] ^ 1, self.to_nic[d] ^ 1
        far = self.leaf[s] != self.leaf[d]
        if far.any():
            leaf_s, leaf_d = self._leaf_row[self.leaf[s[far]]], self._leaf_row[self.leaf[d[far]]]
            out[rows[far], 2:6] = self._d_mod_k(leaf_s, leaf_d, self.nic_index[d[far]])

    def _d_mod_k(self, leaf_s: np.ndarray, leaf_d: np.ndarray, nic_index: np.ndarray) -> np.ndarray:
        """(pairs, 4) link ids from leaf row leaf_s to leaf row leaf_d: up to spine j = d mod K1 of the
        source pod, then within the pod down to leaf_d, else up to core (d // K1) mod K2 of group j,
        down to spine j of the destination pod and to leaf_d (NONE for the core hops a pod's pairs skip)."""
        k1 = self._up.shape[1]
        if k1 == 0:
            raise ValueError(f"no spine connects {self.names[int(self._first_leaf(leaf_s))]} to another leaf")
        j = nic_index % k1
        path = np.full((leaf_s.size, 4), NONE, dtype=np.intp)
        path[:, 0] = self._up[leaf_s, j]
        path[:, 3] = self._up[leaf_d, j] ^ 1
        cross = self._pod[leaf_s] != self._pod[leaf_d]
        if cross.any():
            k2 = self._core_up.shape[1]
            c = nic_index[cross] // k1 % k2
            path[cross, 1] = self._core_up[self._up_spine[leaf_s[cross], j[cross]], c]
            path[cross, 2] = self._core_up[self._up_spine[leaf_d[cross], j[cross]], c] ^ 1
        return path

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
