"""Typed work items of one micro-batch on one rank: compute ops and communication ops."""

from dataclasses import dataclass

from simulator.enums import Category, Collective, CommGroup, OpKind, Phase, Role, TpOverlap

_COMPUTE_CATEGORY = {
    OpKind.GEMM: Category.GEMM,
    OpKind.ATTENTION: Category.ATTENTION,
    OpKind.ELEMENTWISE: Category.OTHER_COMPUTE,
    OpKind.OPTIMIZER: Category.OPTIMIZER,
}
_COMM_CATEGORY = {
    CommGroup.TP: Category.COMM_TP,
    CommGroup.CP: Category.COMM_CP,
    CommGroup.PP: Category.COMM_PP,
    CommGroup.DP: Category.COMM_DP,
    CommGroup.EP: Category.COMM_EP,
    CommGroup.ETP: Category.COMM_TP,  # tensor parallelism inside the experts
    CommGroup.EDP: Category.COMM_DP,  # expert gradients reduced over the expert-data-parallel group
}


@dataclass(frozen=True, slots=True)
class GemmShape:
    """C[m, n] = A[m, k] @ B[k, n], repeated `batch` times (batched GEMM for attention)."""

    m: int
    n: int
    k: int
    batch: int = 1

    @property
    def flops(self) -> float:
        """2*m*n*k per product (one multiply and one add per MAC)."""
        return 2.0 * self.m * self.n * self.k * self.batch


@dataclass(frozen=True, slots=True)
class Op:
    """One kernel (or fused group of kernels) on one rank.

    flops: counted FLOPs (the model-FLOPs convention of Korthikanti et al. 2022; 0 for
    memory-bound ops). work_factor: what the kernel executes relative to `flops` (FlashAttention's
    backward recomputes the scores: 2.5x the forward instead of 2x, Dao 2023). exps: exponentials
    on the special-function units (a fused attention kernel's softmax). bytes: HBM traffic.
    role: what the op does in the model (enums.Role); its name is only a label.
    """

    name: str
    kind: OpKind
    phase: Phase
    flops: float = 0.0
    bytes: float = 0.0
    gemm: GemmShape | None = None
    work_factor: float = 1.0
    causal_fraction: float = 1.0  # share of the score matrix a causal kernel actually computes
    exps: float = 0.0  # exponentials a fused attention kernel evaluates (one per score element)
    head_dim: int = 0  # of a fused attention kernel
    fp8_capable: bool = False  # a transformer-block linear layer: runs in FP8 under an FP8 recipe
    role: Role | None = None  # what it does in the model, for the models that single it out

    # the time it stands for is what this GEMM shape takes beyond `baseline` (the busiest expert-parallel
    # rank's grouped GEMM against the balanced one: workload/moe.py); it adds no FLOPs of its own
    baseline: GemmShape | None = None
    counted: bool = True  # its FLOPs count as model FLOPs (the router's do not: Megatron-LM's convention)
    duplicates: int = 1  # TP ranks that compute the same thing (latent attention's down-projections without SP)
    # framework host calls it issues besides its own dispatch (a grouped GEMM's per-expert loop: workload/moe.py
    # host_calls; priced per call in program/segments.py host_time_s)
    host_calls: int = 0
    host_sync: bool = False  # the host waits for the device before issuing it (a dropless dispatcher's D2H copy)

    @property
    def category(self) -> Category:
        """Where its time goes in the breakdown: by kind, except that recomputed forward work is its own
        category (so the cost of activation checkpointing is visible) and the wait for the busiest
        expert-parallel rank is expert imbalance."""
        if self.role is Role.EXPERT_IMBALANCE:
            return Category.EXPERT_IMBALANCE
        return Category.RECOMPUTE if self.phase is Phase.RECOMPUTE else _COMPUTE_CATEGORY[self.kind]


@dataclass(frozen=True, slots=True)
class CommOp:
    """One collective or point-to-point transfer, from one rank's point of view.

    bytes: the buffer size of the collective (for all-reduce the full tensor on each rank; for
    all-gather the gathered output; for reduce-scatter the input), as NCCL reports `size`.
    """

    name: str
    group: CommGroup
    collective: Collective
    phase: Phase
    bytes: float
    ranks: int
    overlap: TpOverlap = TpOverlap.NONE  # TP comm-GEMM overlap (simulator.costs.tp_overlap)
    overlap_sms: int = 0  # SMs its communication kernels take from the overlapped GEMM

    @property
    def category(self) -> Category:
        """Where its time goes in the breakdown: the communication category of its parallel group."""
        return _COMM_CATEGORY[self.group]


Item = Op | CommOp  # one entry of a compute stream: a kernel or a collective it waits for
