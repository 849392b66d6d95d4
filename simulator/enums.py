"""Enumerations shared across stages: precisions, model styles, plans, op and span kinds."""

from enum import StrEnum


class Precision(StrEnum):
    FP32 = "fp32"
    TF32 = "tf32"
    FP16 = "fp16"
    BF16 = "bf16"
    FP8 = "fp8"


class Activation(StrEnum):
    GELU = "gelu"
    SWIGLU = "swiglu"
    RELU = "relu"


class Norm(StrEnum):
    LAYERNORM = "layernorm"
    RMSNORM = "rmsnorm"


class Position(StrEnum):
    LEARNED = "learned"
    ROPE = "rope"
    ALIBI = "alibi"


class Schedule(StrEnum):
    GPIPE = "gpipe"
    ONE_F_ONE_B = "1f1b"
    INTERLEAVED = "interleaved"


class Recompute(StrEnum):
    NONE = "none"
    SELECTIVE = "selective"
    FULL = "full"


class Phase(StrEnum):
    """When in a micro-batch an op runs."""

    FORWARD = "forward"
    BACKWARD = "backward"
    RECOMPUTE = "recompute"
    OPTIMIZER = "optimizer"


class OpKind(StrEnum):
    """What kind of work an op is; drives its cost function and its breakdown category."""

    GEMM = "gemm"
    ATTENTION = "attention"  # Q.K^T, softmax and attn.V, or one fused FlashAttention kernel
    ELEMENTWISE = "elementwise"  # norms, activations, dropout, residuals, embedding, loss
    OPTIMIZER = "optimizer"


class Role(StrEnum):
    """What an op does in the model, whatever its name: the models that treat some ops specially key on
    it (TP comm overlap and its SM budgets in kernels.yaml, FP8 casts skipped by the overlap, the explain
    report's GEMM kinds), so renaming an op changes no model. Ops without a special role have none."""

    QKV = "qkv"  # the fused Q/K/V projection
    ATTN_PROJ = "attn_proj"  # the attention output projection
    MLP_UP = "mlp_up"  # MLP up (and gate) projection
    MLP_DOWN = "mlp_down"
    LM_HEAD = "lm_head"  # logits
    FP8_CAST = "fp8_cast"  # cast-and-transpose of an FP8 GEMM input (Transformer Engine)
    # mixture of experts
    ROUTER = "router"  # gating GEMM and top-k
    TOKEN_PERMUTE = "token_permute"  # tokens gathered per expert before dispatch, scattered back after
    EXPERT_UP = "expert_up"  # routed experts' grouped GEMMs
    EXPERT_DOWN = "expert_down"
    SHARED_EXPERT_UP = "shared_expert_up"
    SHARED_EXPERT_DOWN = "shared_expert_down"
    EXPERT_IMBALANCE = "expert_imbalance"  # the busiest EP rank's extra expert GEMM time, waited for by all
    # multi-head latent attention (DeepSeek-V2/V3): low-rank down-projections and per-head up-projections
    MLA_DOWN = "mla_down"
    MLA_UP = "mla_up"
    MTP_PROJ = "mtp_proj"  # a multi-token-prediction module's input projection (2h -> h)


class Collective(StrEnum):
    ALL_REDUCE = "all_reduce"
    ALL_GATHER = "all_gather"
    REDUCE_SCATTER = "reduce_scatter"
    ALL_TO_ALL = "all_to_all"
    SEND_RECV = "send_recv"


class TpOverlap(StrEnum):
    """How a tensor-parallel collective of sequence parallelism hides behind a neighbouring GEMM
    (Transformer Engine userbuffers methods, used by Megatron-Core's --tp-comm-overlap)."""

    NONE = "none"
    RING_EXCHANGE = "ring_exchange"  # all-gather in TP steps, each feeding a chunk of the next GEMM
    PIPELINE = "pipeline"  # the GEMM before it in chunks, each chunk's reduce-scatter behind the next
    BULK = "bulk"  # the whole collective behind an independent GEMM (backward: RS of dgrad behind wgrad)


class Algorithm(StrEnum):
    """Collective algorithm (AUTO: chosen by the cost model, as NCCL's tuner does)."""

    AUTO = "auto"
    RING = "ring"
    TREE = "tree"
    HIERARCHICAL = "hierarchical"
    DIRECT = "direct"


class CommGroup(StrEnum):
    """Which parallel dimension a message belongs to (the breakdown category)."""

    TP = "tp"
    CP = "cp"
    PP = "pp"
    DP = "dp"
    EP = "ep"  # expert parallel: token dispatch and combine
    ETP = "etp"  # tensor parallel inside the experts
    EDP = "edp"  # expert data parallel: the ranks that hold the same experts and reduce their gradients


class Category(StrEnum):
    """Breakdown categories of step time (contract `step.breakdown_s`, plus recompute and comm_cp)."""

    GEMM = "gemm"
    ATTENTION = "attention"
    OTHER_COMPUTE = "other_compute"
    RECOMPUTE = "recompute"
    COMM_TP = "comm_tp"
    COMM_CP = "comm_cp"
    COMM_PP = "comm_pp"
    COMM_DP = "comm_dp"
    COMM_EP = "comm_ep"  # exposed expert-parallel all-to-all (dispatch and combine)
    # time every EP rank waits for the busiest one (uneven expert load)
    EXPERT_IMBALANCE = "moe_imbalance"
    # compute slowed by data-parallel / ZeRO-3 collectives running beside it on the same SMs
    COMM_CONTENTION = "comm_contention"
    BUBBLE = "bubble"
    OPTIMIZER = "optimizer"
    HOST_OVERHEAD = "host_overhead"  # GPU waiting for the CPU to dispatch kernels (small ops)
    IDLE = "idle"


class Dispatcher(StrEnum):
    """How tokens reach their experts (Megatron-Core `--moe-token-dispatcher-type`)."""

    ALLTOALL = "alltoall"  # NCCL all-to-all of the permuted tokens
    DEEPEP = "deepep"  # DeepEP kernels: node-deduplicated RDMA + NVLink forwarding, FP8 dispatch, own SMs
    ALLGATHER = "allgather"  # all-gather every token to every EP rank, reduce-scatter the outputs


class LayerKind(StrEnum):
    """What a transformer layer's MLP is."""

    DENSE = "dense"
    MOE = "moe"


class MemoryKind(StrEnum):
    """What the bytes on a GPU hold (contract `memory.per_gpu_bytes`)."""

    WEIGHTS = "weights"
    GRADIENTS = "gradients"
    OPTIMIZER = "optimizer"
    ACTIVATIONS = "activations"
    OTHER = "other"  # CUDA context, NCCL buffers, transient buffers, allocator fragmentation


class Engine(StrEnum):
    """How a step is timed: the SimPy event simulation, or the closed form over the same program."""

    EVENT = "event"
    ANALYTICAL = "analytical"


class Fidelity(StrEnum):
    """What the event engine simulates: one representative pipeline (every data-parallel replica is
    the same), or every replica (stragglers, per-GPU speed)."""

    SYMMETRIC = "symmetric"
    FULL = "full"


class CudaGraphs(StrEnum):
    """What the framework captures in CUDA graphs, so the host replays a graph instead of launching each
    kernel (Megatron-Core `cuda_graph_impl` / `cuda_graph_scope`; program/segments.py prices the host)."""

    NONE = "none"  # eager: every op dispatched by the host
    LAYERS = "layers"  # each transformer layer's forward and backward (the attention part of a dropless MoE layer)
    FULL_ITERATION = "full_iteration"  # the whole forward-backward as one graph, the optimizer outside


class TopologyKind(StrEnum):
    """Scale-out fabric builders (simulator.topology.builders)."""

    FAT_TREE = "fat-tree"
    RAIL_OPTIMIZED = "rail-optimized"


class Cooling(StrEnum):
    """How a node's heat leaves it: fans blowing air through it, or cold plates on the CPUs and GPUs
    (direct liquid cooling), which takes most of the fans' power off the node's own draw."""

    AIR = "air"
    LIQUID = "liquid"


class RunPhase(StrEnum):
    """What the job does at a moment of the whole run (the run model's power window and energy)."""

    TRAINING = "training"
    CHECKPOINT = "checkpoint"  # the job blocks while its state is written to storage
    STOPPED = "stopped"  # after a failure until the job is back: detection, node swap, rescheduling
    RESTART = "restart"  # the restarted job reads its last checkpoint
    REDO = "redo"  # training lost to the failure (since the last checkpoint), done again
