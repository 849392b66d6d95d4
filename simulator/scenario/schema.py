"""The scenario YAML schema (docs/contract.md section 1), as strict pydantic models.

Unknown keys are errors (`extra="forbid"`); numbers may be written as strings such as
"300e9" (YAML 1.1 reads that as a string), whole numbers also as integral floats (8e0), never as
booleans. Every number has a physical range and free text no control characters: the bounds and
their reasons are in `simulator/bounds.py`. Cross-field rules: `rules.py` (the parallel plan) and
`resolve.py` (catalogue look-ups, training).
"""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from simulator import bounds as b
from simulator.bounds import RealNumber, Text, Whole, WholeNumber, within
from simulator.catalog.hardware import GpuEntry
from simulator.catalog.models import ModelEntry
from simulator.enums import (
    Algorithm,
    Cooling,
    CudaGraphs,
    Dispatcher,
    Engine,
    Fidelity,
    Precision,
    Recompute,
    Schedule,
    TopologyKind,
)


class _Section(BaseModel):
    # Infinite or NaN numbers (`.inf`, "1e400") would only surface later as a crash (int(inf),
    # JSON without inf): reject them here as the input errors they are.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ModelSection(ModelEntry):
    """`model:`: a catalogue preset and/or explicit shape fields (explicit fields win)."""

    preset: Text | None = None
    # A Hugging Face config.json (path relative to the scenario file) the shape is read from; explicit
    # fields here override it (scenario/hf_config.py folds it in before validation).
    hf_config: Text | None = None


class ClusterSection(_Section):
    gpu: Text
    num_gpus: Annotated[WholeNumber, within(1, b.MAX_GPUS)]
    # Default: the GPUs of the GPU's node in the node catalogue (network.yaml `default_node_for_gpu`):
    # 8 for DGX/HGX servers and unknown GPUs, 4 for a GB200/GB300 NVL72 compute tray.
    gpus_per_node: Annotated[WholeNumber, within(1, b.MAX_GPUS_PER_NODE)] | None = None
    intra_node_GBps: Annotated[RealNumber, within(b.MIN_GBPS, b.MAX_GBPS)] | None = (
        None  # default: the GPU's scale-up bandwidth
    )
    inter_node_Gbps: Annotated[RealNumber, within(b.MIN_GBIT, b.MAX_GBIT)] | None = (
        None  # default: the node's NIC line rate
    )
    nics_per_node: Annotated[WholeNumber, within(1, b.MAX_NICS_PER_NODE)] | None = None  # default: the node's NIC count
    topology: TopologyKind = TopologyKind.FAT_TREE
    # GPUs joined by one NVLink fabric (a whole number of nodes); default gpus_per_node, except for
    # rack-scale GPUs (the GPU catalogue's `scale_up_domain`: 72 for GB200/GB300 NVL72).
    scale_up_domain: Annotated[WholeNumber, within(1, b.MAX_GPUS)] | None = None
    # leaf downlink : uplink ratio (1 = non-blocking)
    oversubscription: Annotated[RealNumber, within(1.0, b.MAX_OVERSUBSCRIPTION)] = 1.0
    node_overhead_W: Annotated[RealNumber, within(0.0, b.MAX_WATTS)] | None = (
        None  # default: the node catalogue's value, for the node's cooling
    )
    # Extension: air or direct liquid cooling (network.yaml `cooling`, `liquid_cooling_saving_W`):
    # liquid takes the fans' share off the catalogue's typical overhead. Default: as the node is built.
    cooling: Cooling | None = None
    # Extension: the node's rated maximum input power; a simulated node peak above it is reported
    # (a warning). Default: the node catalogue's datasheet figure.
    node_max_W: Annotated[RealNumber, within(0.0, b.MAX_WATTS, low_open=True)] | None = None
    # Collective algorithm; auto picks the fastest by the cost model, as NCCL's tuner does.
    collective_algorithm: Algorithm = Algorithm.AUTO
    # Extension (issue 14): every GPU's SM clock locked at this (nvidia-smi --lock-gpu-clocks), within the
    # GPU catalogue's min_clock_MHz..max_clock_MHz; default: the GPU boosts as its power limit allows.
    gpu_clock_MHz: Annotated[RealNumber, within(b.MIN_CLOCK_MHZ, b.MAX_CLOCK_MHZ)] | None = None
    # Extension (issue 14): every GPU's board power limit (nvidia-smi --power-limit), within the GPU
    # catalogue's min_power_limit_W..tdp_W; default: tdp_W. A clock above what the limit allows is clipped.
    gpu_power_limit_W: Annotated[RealNumber, within(0.0, b.MAX_WATTS, low_open=True)] | None = None


class ParallelismSection(_Section):
    # Degrees of parallelism multiply to cluster.num_gpus (rules.py), so none exceeds MAX_GPUS.
    tp: Annotated[WholeNumber, within(1, b.MAX_GPUS)] = 1
    pp: Annotated[WholeNumber, within(1, b.MAX_GPUS)] = 1
    dp: Annotated[WholeNumber, within(1, b.MAX_GPUS)] | None = None
    cp: Annotated[WholeNumber, within(1, b.MAX_GPUS)] = 1
    schedule: Schedule = Schedule.ONE_F_ONE_B
    virtual_stages: Annotated[WholeNumber, within(1, b.MAX_LAYERS)] = 1
    sequence_parallel: bool = False
    # Default 1: the optimizer state sharded over data-parallel ranks (Megatron-core's distributed
    # optimizer and NeMo's distributed_fused_adam, the default of current LLM training stacks);
    # same communication volume as plain all-reduce (reduce-scatter + all-gather).
    zero: Annotated[Literal[0, 1, 2, 3], Whole] = 1
    recompute: Recompute = Recompute.NONE
    # Extension: with recompute: full, recompute only the first N layers of every pipeline chunk and
    # keep all activations of the others (Megatron-LM --recompute-method block
    # --recompute-num-layers N), trading memory for less recomputation. Default: every layer.
    recompute_layers: Annotated[WholeNumber, within(1, b.MAX_LAYERS)] | None = None
    # Extension: overlap the data-parallel gradient reduction with the backward pass, per bucket in
    # the last backward of each model chunk (PyTorch DDP / Megatron --overlap-grad-reduce). Default:
    # the framework.stack profile's (off without a stack; Megatron-LM 2021 did not overlap).
    dp_overlap: bool | None = None
    # Extension: overlap the all-gathers / reduce-scatters of sequence parallelism with the adjacent
    # GEMMs (Transformer Engine userbuffers; Megatron-Core --tp-comm-overlap, NeMo
    # `tp_comm_overlap`). Needs sequence_parallel. Default: the GPU catalogue's `tp_comm_overlap`
    # (on for Hopper and later) whenever sequence parallelism is on.
    tp_comm_overlap: bool | None = None
    # Mixture of experts (docs/contract.md section 1b; Megatron-Core parallel folding): the experts are
    # split over `ep` ranks and each expert over `etp` (default tp) ranks, laid over the same GPUs as
    # tp x cp x dp; the expert-data-parallel group is what remains (rules.py).
    ep: Annotated[WholeNumber, within(1, b.MAX_GPUS)] = 1
    etp: Annotated[WholeNumber, within(1, b.MAX_GPUS)] | None = None
    moe_dispatcher: Dispatcher = Dispatcher.ALLTOALL
    moe_overlap: bool = False  # one micro-batch's all-to-alls hidden behind another's compute


class TrainingSection(_Section):
    global_batch: Annotated[WholeNumber, within(1, b.MAX_GLOBAL_BATCH)]  # micro-batches per step: also rules.py
    micro_batch: Annotated[WholeNumber, within(1, b.MAX_MICRO_BATCH)] = 1
    tokens: Annotated[RealNumber, within(0.0, b.MAX_TOKENS, low_open=True)] | None = None
    precision: Precision = Precision.BF16
    flash_attention: bool = False


class EnergySection(_Section):
    """Facility and grid. Defaults: see `simulator/specs/economics.yaml`."""

    pue: Annotated[RealNumber, within(b.MIN_PUE, b.MAX_PUE)] | None = None
    grid_kg_co2_per_kWh: Annotated[RealNumber, within(0.0, b.MAX_GRID_KG_PER_KWH)] | None = None


class ReliabilitySection(_Section):
    """Failures, checkpoints and restarts over the whole run. Defaults: `simulator/specs/reliability.yaml`.
    checkpoint_interval_s None: the Young/Daly optimum."""

    enabled: bool = False
    gpu_failures_per_hour: Annotated[RealNumber, within(0.0, b.MAX_FAILURES_PER_HOUR)] | None = None  # per GPU
    node_failures_per_hour: Annotated[RealNumber, within(0.0, b.MAX_FAILURES_PER_HOUR)] | None = (
        None  # per node: host, network, software
    )
    checkpoint_interval_s: (
        Annotated[RealNumber, within(b.MIN_CHECKPOINT_INTERVAL_S, b.MAX_CHECKPOINT_INTERVAL_S)] | None
    ) = None
    storage_write_GBps_per_node: Annotated[RealNumber, within(b.MIN_GBPS, b.MAX_GBPS)] | None = None
    storage_read_GBps_per_node: Annotated[RealNumber, within(b.MIN_GBPS, b.MAX_GBPS)] | None = None
    restart_s: Annotated[RealNumber, within(0.0, b.MAX_RESTART_S)] | None = (
        None  # after an interruption, checkpoint load excluded
    )


class CostSection(_Section):
    usd_per_gpu_hour: Annotated[RealNumber, within(0.0, b.MAX_USD_PER_GPU_HOUR)] | None = (
        None  # default per GPU in economics.yaml
    )
    # energy billed separately (0 when the GPU-hour price includes it)
    usd_per_kWh: Annotated[RealNumber, within(0.0, b.MAX_USD_PER_KWH)] | None = None


class CatalogueSection(_Section):
    """Scenario-local catalogue entries: a hypothetical accelerator or a private model, inline or in
    YAML files of the same shape (`files`, relative to the scenario file; read by load.py)."""

    files: list[Text] = Field(default_factory=list)
    gpus: dict[Text, GpuEntry] = Field(default_factory=dict)  # a bundled GPU's name: replaces that GPU
    # A bundled preset's name: overlays that preset (the fields given replace the preset's, the
    # others stay the preset's; catalog.models.model_catalogue).
    models: dict[Text, ModelEntry] = Field(default_factory=dict)


class FrameworkSection(_Section):
    """The training framework. stack: a named software-stack profile (simulator/specs/stacks.yaml:
    what a release of Megatron-LM, NeMo, MLPerf's NeMo, FSDP2 ... does, each setting cited), the
    defaults of the keys below and of parallelism.dp_overlap / tp_comm_overlap; none named: the
    simulator's generic defaults. host_time_per_op_us: its host-side cost per modelled op, default
    calibrated on eager Megatron-DeepSpeed (simulator/specs/software.yaml); fused-kernel stacks or
    CUDA graphs need less. fused_cross_entropy: the loss runs as fused kernels over the logits
    (Megatron-Core's cross_entropy_loss_fusion, as NeMo runs it) rather than as separate eager
    passes over an fp32 copy; default: the GPU catalogue's `fused_cross_entropy`.
    overlap_param_gather: the ZeRO-1/2 weight all-gather runs per bucket behind the next step's first
    forward of each chunk (Megatron-Core --overlap-param-gather; needs dp_overlap and zero 1 or 2).
    fp8_param_gather: FP8 runs gather the FP8 weights, one byte per parameter (Megatron-Core
    --fp8-param-gather, NeMo fp8_params; needs precision fp8). flash_attention_version: 1 for stacks
    on flash-attn 1.x, whose fused attention runs at half the FlashAttention-2-class rate of the GPU
    catalogue (kernels.yaml); default 2. fp32_gradients: BF16 and FP8 runs accumulate, keep and reduce
    gradients in fp32 (Megatron's main_grad buffers: --bf16 forces --accumulate-allreduce-grads-in-fp32
    through Megatron-Core 0.11; FSDP2's fp32 reduce_dtype); default: 2-byte gradients.
    cuda_graphs: what the host replays as CUDA graphs instead of launching kernel by kernel: `none`
    (eager, the default: Megatron-Core's cuda_graph_impl "none"), `layers` (each transformer layer's
    forward and backward, Megatron-Core / Transformer Engine per-layer graphs; a dropless MoE layer
    only its attention part) or `full_iteration` (the whole forward-backward, optimizer outside; not
    for dropless MoE models, whose routing syncs with the host every layer; a MoE model padded to
    model.moe.capacity_factor is captured whole)."""

    stack: Text | None = None
    host_time_per_op_us: Annotated[RealNumber, within(0.0, b.MAX_LAUNCH_US)] | None = None
    fused_cross_entropy: bool | None = None
    overlap_param_gather: bool | None = None
    fp8_param_gather: bool | None = None
    flash_attention_version: Annotated[Literal[1, 2], Whole] | None = None
    fp32_gradients: bool | None = None
    cuda_graphs: CudaGraphs | None = None


class SimulationSection(_Section):
    """How to simulate. engine: `event` (SimPy, the default) or `analytical` (closed form, for
    quick estimates). fidelity: `symmetric` simulates one representative rank per pipeline stage
    with collectives priced for all concurrent groups; `full` simulates every data-parallel replica."""

    engine: Engine = Engine.EVENT
    fidelity: Fidelity = Fidelity.SYMMETRIC
    # Full fidelity only: per-GPU compute speed varies log-normally with this coefficient of
    # variation (0 = identical GPUs); slow GPUs become stragglers their replicas wait for.
    compute_jitter: Annotated[RealNumber, within(0.0, 1.0)] = 0.0


class Scenario(_Section):
    name: Text
    model: ModelSection
    cluster: ClusterSection
    parallelism: ParallelismSection = ParallelismSection()
    training: TrainingSection
    energy: EnergySection = EnergySection()
    cost: CostSection = CostSection()
    reliability: ReliabilitySection = ReliabilitySection()
    catalogue: CatalogueSection = CatalogueSection()
    simulation: SimulationSection = SimulationSection()
    framework: FrameworkSection = FrameworkSection()
    seed: Annotated[WholeNumber, within(0, b.MAX_SEED)] = 0
