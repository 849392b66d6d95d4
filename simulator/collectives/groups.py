"""Global rank layout and the GPUs of each parallel group (Megatron-LM order).

rank = tp_i + tp * (cp_i + cp * (dp_i + dp * pp_i)): tensor parallel fastest (inside a node),
pipeline parallel outermost (Megatron-LM `initialize_model_parallel`). GPU id = rank; GPUs fill
nodes in order.
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

    @classmethod
    def of(cls, plan: ParallelPlan) -> "Layout":
        return cls(tp=plan.tp, cp=plan.cp, dp=plan.dp, pp=plan.pp)

    def rank(self, t: int, c: int, d: int, s: int) -> int:
        return t + self.tp * (c + self.cp * (d + self.dp * s))

    def group(self, kind: CommGroup, stage: int, t: int = 0, c: int = 0, d: int = 0) -> tuple[int, ...]:
        """The GPUs of one group containing coordinates (t, c, d, stage); DP spans DP x CP
        (context-parallel ranks hold the same weights and reduce gradients together)."""
        if kind is CommGroup.TP:
            return tuple(self.rank(i, c, d, stage) for i in range(self.tp))
        if kind is CommGroup.CP:
            return tuple(self.rank(t, i, d, stage) for i in range(self.cp))
        if kind is CommGroup.DP:
            return tuple(self.rank(t, ci, di, stage) for di in range(self.dp) for ci in range(self.cp))
        raise ValueError(f"{kind} has no group; pipeline traffic is point-to-point")

    def concurrent_groups(self, kind: CommGroup, stage: int) -> list[tuple[int, ...]]:
        """Every group of `kind` on `stage`: by symmetry they all run the same collective at once."""
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
