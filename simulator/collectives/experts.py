"""Expert-parallel token exchange as transport: what a token dispatcher sends where, DeepEP's node
deduplication in closed form, and the SMs each dispatcher's kernels hold (kernels.yaml `moe`).

Dispatchers (parallelism.moe_dispatcher; Megatron-Core `--moe-token-dispatcher-type`):
- alltoall: NCCL all-to-all of the permuted tokens over the EP group (every copy of a token, one per
  routed expert, travels on its own), priced with NCCL's protocol model like the other collectives.
- deepep: DeepEP's normal kernels (github.com/deepseek-ai/DeepEP, docs/legacy.md "Normal kernels with
  NVLink and RDMA forwarding"): a token crosses the scale-out network once per destination NVLink
  domain, to the GPU there with the sender's own local index, which forwards it over NVLink to the
  GPUs that hold its experts; inside the sender's own domain it goes over NVLink directly.
- allgather: all-gather of the tokens over the EP group, then reduce-scatter of the outputs
  (Megatron-Core MoEAllGatherTokenDispatcher); ordinary collectives, nothing special here.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from simulator.catalog.loader import bundled
from simulator.catalog.models import ModelSpec
from simulator.enums import Collective, Dispatcher
from simulator.scenario.setup import ParallelPlan
from simulator.topology import LinkKind


@dataclass(frozen=True)
class ExpertRouting:
    """What the pricer needs of an MoE model to price its token exchange: the routed experts per layer,
    the experts each token visits, and the dispatcher."""

    experts: int
    top_k: int
    dispatcher: Dispatcher = Dispatcher.ALLTOALL

    @classmethod
    def of(cls, model: ModelSpec, plan: ParallelPlan) -> "ExpertRouting | None":
        """The routing of a model's MoE layers under a plan; None for a dense model."""
        moe = model.moe
        return None if moe is None else cls(moe.experts, moe.top_k, plan.moe_dispatcher)


def hit_probability(experts: int, top_k: int, held: int) -> float:
    """Probability that a token routed to `top_k` distinct experts drawn uniformly at random from
    `experts` (balanced random routing) picks at least one of `held` given experts:
        P = 1 - C(E - h, k) / C(E, k) = 1 - prod_{i < k} (E - h - i) / (E - i)."""
    miss = 1.0
    for i in range(top_k):
        if experts - held - i <= 0:
            return 1.0
        miss *= (experts - held - i) / (experts - i)
    return 1.0 - miss


def dedup_factor(experts: int, top_k: int, ep: int, ranks_per_domain: int) -> float:
    """DeepEP's scale-out bytes per plain all-to-all scale-out byte, for balanced random routing: an EP
    group of `ep` ranks spans m = ep / ranks_per_domain NVLink domains, each rank holding experts / ep
    experts (so each domain E / m). For a token of a rank in one domain,
        E[copies leaving its domain]          = k (1 - 1/m)                  (plain all-to-all)
        E[distinct other domains it reaches]  = (m - 1) (1 - C(E - E/m, k) / C(E, k))   (DeepEP)
    and the factor is their ratio, m (1 - C(E - E/m, k) / C(E, k)) / k (1 when the group stays in one
    domain). DeepSeek-V3 (E 256, k 8) on EP 64 over 8-GPU servers (m 8): 0.66 (top-4-group-limited
    routing, which the model does not assume, lowers it further)."""
    m = ep // ranks_per_domain
    if m <= 1:
        return 1.0
    return m * hit_probability(experts, top_k, experts // m) / top_k


def all_to_all_transfers(groups: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(src, dst) of a plain all-to-all on every group at once: each rank to each other rank of its
    group (the share to itself stays local), group after group, sources in group order."""
    ranks = np.asarray(groups, dtype=np.intp)
    n = ranks.shape[1]
    src = np.repeat(ranks, n, axis=1).ravel()
    dst = np.tile(ranks, (1, n)).ravel()
    moving = src != dst
    return src[moving], dst[moving]


def deepep_transfers(
    group: Sequence[int], domain_size: int, experts: int, top_k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DeepEP's dispatch on one EP group as weighted transfers (src, dst, weight), weights in units of
    size / n, the share a plain all-to-all sends to each peer (n = len(group)). With M_D the group's
    ranks in domain D (`domain_size` GPUs per domain) and E_D = |M_D| E / n the experts they hold:
    - a rank sends to each other rank of its own domain its plain share (weight 1, NVLink);
    - to every other domain D, one copy of each token that has an expert there, to the rank of M_D at
      the sender's own index within its domain (modulo |M_D|: DeepEP's "same local rank" RDMA peer):
      bytes tokens x hidden x P(hit D) = (size / n) x n P(hit D) / k, so weight n P(hit D) / k, with
      P(hit D) = hit_probability(E, k, E_D);
    - that peer forwards to every other rank of M_D its plain share (weight 1 per sender, NVLink).
    For equal domains the scale-out weights of a sender sum to |group outside its domain| x
    dedup_factor."""
    ranks = np.asarray(group, dtype=np.intp)
    n = ranks.size
    domain_ids, dom = np.unique(ranks // domain_size, return_inverse=True)
    m = domain_ids.size
    sizes = np.bincount(dom, minlength=m)
    # each rank's index within its domain, in group order; members[D, j] = the rank at index j of D
    order = np.argsort(dom, kind="stable")
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    local = np.empty(n, dtype=np.intp)
    local[order] = np.arange(n) - starts[dom[order]]
    width = int(sizes.max())
    members = np.full((m, width), -1, dtype=np.intp)
    members[dom, local] = ranks
    # own domain: every other member, weight 1
    j = np.arange(width)
    own = (j[None, :] < sizes[dom][:, None]) & (j[None, :] != local[:, None])
    srcs = [np.broadcast_to(ranks[:, None], own.shape)[own]]
    dsts = [members[dom][own]]
    weights = [np.ones(int(own.sum()))]
    # scale-out: one copy per token to the same-index peer of every other domain
    held = sizes * experts // n
    reach = np.array([n * hit_probability(experts, top_k, int(h)) / top_k for h in held])
    remote = dom[:, None] != np.arange(m)[None, :]  # (n, m)
    slot = local[:, None] % sizes[None, :]  # the peer's index in each domain
    peers = members[np.arange(m)[None, :], slot]
    srcs.append(np.broadcast_to(ranks[:, None], remote.shape)[remote])
    dsts.append(peers[remote])
    weights.append(np.broadcast_to(reach[None, :], remote.shape)[remote])
    # forwarding: the peer at slot q of domain D passes each of its senders' shares to D's other members
    senders = np.bincount((np.arange(m)[None, :] * width + slot)[remote], minlength=m * width).reshape(m, width)
    fwd = (senders[:, :, None] > 0) & (j[None, None, :] < sizes[:, None, None]) & (j[None, :, None] != j[None, None, :])
    srcs.append(np.broadcast_to(members[:, :, None], fwd.shape)[fwd])
    dsts.append(np.broadcast_to(members[:, None, :], fwd.shape)[fwd])
    weights.append(np.broadcast_to(senders[:, :, None], fwd.shape)[fwd].astype(float))
    return np.concatenate(srcs), np.concatenate(dsts), np.concatenate(weights)


@cache
def _moe() -> dict:
    return dict(bundled("kernels")["moe"])


def deepep_link_factor(kind: LinkKind) -> float:
    """Bytes-on-the-wire factor of DeepEP's traffic on a link of `kind`, against the link's capacity as
    the topology holds it (NCCL's achieved share of the NVLink rate; the NIC line rate times
    `comm.nic_efficiency`): NVLink 1 / nvlink_fraction, NIC and switch links nic_efficiency /
    rdma_fraction (kernels.yaml `moe.deepep`, from DeepEP's published H800 bandwidths); PCIe, sized
    not to throttle the NIC, 1."""
    deepep = _moe()["deepep"]
    if kind is LinkKind.NVLINK:
        return 1.0 / float(deepep["nvlink_fraction"])
    if kind in (LinkKind.NIC, LinkKind.UPLINK, LinkKind.CORE):
        return float(bundled("kernels")["comm"]["nic_efficiency"]) / float(deepep["rdma_fraction"])
    return 1.0


def dispatcher_sms(dispatcher: Dispatcher) -> int:
    """SMs a dispatcher's communication kernels hold while they run beside compute (for the engine's
    contention model): NCCL's `comm.overlap_sms` for alltoall and allgather, DeepEP's `moe.deepep.sms`."""
    if dispatcher is Dispatcher.DEEPEP:
        return int(_moe()["deepep"]["sms"])
    return int(bundled("kernels")["comm"]["overlap_sms"])


@dataclass(frozen=True)
class Exchange:
    """One token exchange of an MoE layer on the EP group: the collective and its `size_bytes` as
    CommPricer.unit_flows takes it."""

    collective: Collective
    size_bytes: float


def token_exchange(
    dispatcher: Dispatcher, tokens: int, top_k: int, hidden: int, ep: int, bytes_per_element: float
) -> tuple[Exchange, Exchange]:
    """(dispatch, combine) of one rank's `tokens` (those it routes, after any sequence-parallel split),
    each `hidden` wide at `bytes_per_element` (DeepEP dispatches FP8: ~1 + 4/128 bytes with its scales;
    its combine is BF16: pass each its own element size by calling twice if they differ):
    - alltoall, deepep: an all-to-all of the permuted tokens, tokens x top_k x hidden x bytes, each way;
    - allgather: an all-gather of every EP rank's tokens (the gathered buffer: ep x tokens x hidden x
      bytes) and a reduce-scatter of the outputs of the same size (Megatron-Core gathers over the
      expert-TP x EP ranks; with etp 1 that is the EP group)."""
    if dispatcher is Dispatcher.ALLGATHER:
        size = float(ep * tokens * hidden) * bytes_per_element
        return Exchange(Collective.ALL_GATHER, size), Exchange(Collective.REDUCE_SCATTER, size)
    size = float(tokens * top_k * hidden) * bytes_per_element
    return Exchange(Collective.ALL_TO_ALL, size), Exchange(Collective.ALL_TO_ALL, size)
