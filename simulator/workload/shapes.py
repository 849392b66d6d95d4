"""Per-rank tensor dimensions of one micro-batch under TP, SP and CP."""

from dataclasses import dataclass

from simulator import dtypes
from simulator.catalog.models import ModelSpec
from simulator.scenario.setup import Setup


@dataclass(frozen=True)
class RankShapes:
    """Tensor dimensions one rank works on, after the TP, CP and sequence-parallel splits."""

    b: int  # micro-batch (sequences)
    s: int  # full sequence length (keys each query may attend to)
    s_q: int  # query tokens on this rank (s / cp)
    h: int
    f: int  # ffn hidden
    d: int  # head dim (of the queries and keys; = d_v except with latent attention)
    heads: int  # attention heads on this rank (heads / tp)
    kv_heads: int  # kv heads on this rank (kv_heads / tp)
    tp: int
    cp: int
    sp: bool
    tp_overlap: bool  # SP collectives overlap their GEMMs (Transformer Engine userbuffers)
    vocab: int
    elem: int  # activation bytes per element
    gemm_elem: int  # GEMM operand bytes per element
    fused_loss: bool = False  # the cross-entropy runs as fused kernels (workload/head.py)
    d_v: int = 0  # head dim of the values; 0 in the constructor = d

    def __post_init__(self) -> None:
        if self.d_v == 0:
            object.__setattr__(self, "d_v", self.d)

    @property
    def tokens(self) -> int:
        """Tokens of the micro-batch this rank computes in TP-sharded ops: b * s / cp."""
        return self.b * self.s_q

    @property
    def norm_tokens(self) -> float:
        """Tokens seen by non-TP ops (norms, dropout, residual): split over TP with SP."""
        return self.tokens / self.tp if self.sp else self.tokens

    @property
    def vocab_local(self) -> float:
        return self.vocab / self.tp


def rank_shapes(setup: Setup) -> RankShapes:
    m: ModelSpec = setup.model
    p = setup.plan
    return RankShapes(
        b=setup.training.micro_batch,
        s=m.seq_len,
        s_q=m.seq_len // p.cp,
        h=m.hidden,
        f=m.ffn_hidden,
        d=m.mla.qk_dim if m.mla else m.head_dim,
        d_v=m.mla.v_head_dim if m.mla else m.head_dim,
        heads=m.heads // p.tp,
        kv_heads=m.kv_heads // p.tp,
        tp=p.tp,
        cp=p.cp,
        sp=p.sequence_parallel and p.tp > 1,
        tp_overlap=p.tp_comm_overlap,
        vocab=m.vocab,
        elem=dtypes.activation_bytes(setup.training.precision),
        gemm_elem=dtypes.gemm_operand_bytes(setup.training.precision),
        fused_loss=setup.fused_cross_entropy,
    )
