"""Global rank layout and the GPUs of each parallel group (Megatron-LM order).

rank = tp_i + tp * (cp_i + cp * (dp_i + dp * pp_i)): tensor parallel fastest (inside a node),
pipeline parallel outermost (Megatron-LM `initialize_model_parallel`). GPU id = rank; GPUs fill
nodes in order.

Experts (Megatron-Core parallel folding, Liu et al. 2025 "MoE Parallel Folding"): within one
pipeline stage the same tp * cp * dp GPUs are indexed a second time as an expert grid, expert
tensor parallel fastest, then expert parallel, then expert data parallel (Megatron-Core's expert
RankGenerator, order "tp-ep-dp-pp" with tp = etp and cp = 1, in megatron/core/parallel_state.py):
    local = rank - stage * tp * cp * dp = etp_i + etp * (ep_i + ep * edp_i),
with edp = tp * cp * dp / (ep * etp). The pipeline stages are the same in both grids.
"""

from dataclasses import dataclass

from simulator.enums import CommGroup
from simulator.scenario.setup import ParallelPlan


@dataclass(frozen=True)
class Layout:
    """Parallel degrees that place ranks on GPUs (Megatron-LM order, see the module docstring)."""

    tp: int
    cp: int
    dp: int
    pp: int
    ep: int = 1  # expert parallel
    etp: int = 0  # expert tensor parallel; 0 in the constructor = tp (Megatron-Core's default)

    def __post_init__(self) -> None:
        if self.etp == 0:
            object.__setattr__(self, "etp", self.tp)

    @classmethod
    def of(cls, plan: ParallelPlan) -> "Layout":
        return cls(tp=plan.tp, cp=plan.cp, dp=plan.dp, pp=plan.pp, ep=plan.ep, etp=plan.etp)

    @property
    def stage_size(self) -> int:
        """GPUs of one pipeline stage: tp * cp * dp (the dense grid and the expert grid alike)."""
        return self.tp * self.cp * self.dp

    @property
    def edp(self) -> int:
        """Expert-data-parallel degree: the stage's GPUs over ep * etp."""
        return self.stage_size // (self.ep * self.etp)

    def rank(self, t: int, c: int, d: int, s: int) -> int:
        return t + self.tp * (c + self.cp * (d + self.dp * s))

    def expert_rank(self, et: int, e: int, ed: int, s: int) -> int:
        """The GPU at expert-grid coordinates (etp_i, ep_i, edp_i) of stage s."""
        return s * self.stage_size + et + self.etp * (e + self.ep * ed)

    def expert_coords(self, t: int, c: int, d: int) -> tuple[int, int, int]:
        """(etp_i, ep_i, edp_i) of the GPU at dense coordinates (t, c, d) of any stage."""
        local = t + self.tp * (c + self.cp * d)
        return local % self.etp, local // self.etp % self.ep, local // (self.etp * self.ep)

    def _check_experts(self) -> None:
        if self.stage_size % (self.ep * self.etp):
            raise ValueError(
                f"ep * etp = {self.ep * self.etp} must divide tp * cp * dp = {self.stage_size} (parallel folding)"
            )

    def group(self, kind: CommGroup, stage: int, t: int = 0, c: int = 0, d: int = 0) -> tuple[int, ...]:
        """The GPUs of one group containing coordinates (t, c, d, stage); DP spans DP x CP
        (context-parallel ranks hold the same weights and reduce gradients together). EP, ETP and EDP
        are groups of the expert grid (module docstring) containing the GPU at (t, c, d, stage)."""
        if kind in (CommGroup.EP, CommGroup.ETP, CommGroup.EDP):
            return self.expert_group(kind, stage, *self.expert_coords(t, c, d))
        if kind is CommGroup.TP:
            return tuple(self.rank(i, c, d, stage) for i in range(self.tp))
        if kind is CommGroup.CP:
            return tuple(self.rank(t, i, d, stage) for i in range(self.cp))
        if kind is CommGroup.DP:
            return tuple(self.rank(t, ci, di, stage) for di in range(self.dp) for ci in range(self.cp))
        raise ValueError(f"{kind} has no group; pipeline traffic is point-to-point")

    def expert_group(self, kind: CommGroup, stage: int, et: int = 0, e: int = 0, ed: int = 0) -> tuple[int, ...]:
        """The GPUs of the EP, ETP or EDP group containing expert-grid coordinates (et, e, ed, stage):
        EP = the ranks that split the experts (token dispatch and combine), ETP = the ranks that
        split each expert's matrices, EDP = the ranks that hold the same expert shard and reduce its
        gradients (Megatron-Core `get_expert_data_parallel_group`)."""
        self._check_experts()
        if kind is CommGroup.EP:
            return tuple(self.expert_rank(et, i, ed, stage) for i in range(self.ep))
        if kind is CommGroup.ETP:
            return tuple(self.expert_rank(i, e, ed, stage) for i in range(self.etp))
        if kind is CommGroup.EDP:
            return tuple(self.expert_rank(et, e, i, stage) for i in range(self.edp))
        raise ValueError(f"{kind} is not an expert group")

    def concurrent_groups(self, kind: CommGroup, stage: int) -> list[tuple[int, ...]]:
        """Every group of `kind` on `stage`: by symmetry they all run the same collective at once."""
        if kind is CommGroup.EP:
            return [self.expert_group(kind, stage, et=et, ed=ed) for ed in range(self.edp) for et in range(self.etp)]
        if kind is CommGroup.ETP:
            return [self.expert_group(kind, stage, e=e, ed=ed) for ed in range(self.edp) for e in range(self.ep)]
        if kind is CommGroup.EDP:
            return [self.expert_group(kind, stage, et=et, e=e) for e in range(self.ep) for et in range(self.etp)]
        if kind is CommGroup.TP:
            return [self.group(kind, stage, c=c, d=d) for d in range(self.dp) for c in range(self.cp)]
        if kind is CommGroup.CP:
            return [self.group(kind, stage, t=t, d=d) for d in range(self.dp) for t in range(self.tp)]
        if kind is CommGroup.DP:
            return [self.group(kind, stage, t=t) for t in range(self.tp)]
        raise ValueError(kind)

    def pipeline_pairs(self, src_stage: int, dst_stage: int, replica: int | None = None) -> list[tuple[int, int]]:
        """Every (sender, receiver) of one pipeline hop: of all replicas at once (they send at the
        same time), or of one data-parallel replica."""
        replicas = range(self.dp) if replica is None else (replica,)
        return [
            (self.rank(t, c, d, src_stage), self.rank(t, c, d, dst_stage))
            for d in replicas
            for c in range(self.cp)
            for t in range(self.tp)
        ]
