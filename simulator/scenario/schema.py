"""The scenario YAML schema (docs/contract.md section 1), as strict pydantic models.

Unknown keys are errors (`extra="forbid"`); numbers may be written as strings such as
"300e9" (YAML 1.1 reads that as a string). Cross-field rules: `rules.py` (the parallel plan)
and `resolve.py` (catalogue look-ups, training).
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt

from simulator.catalog.hardware import GpuEntry
from simulator.catalog.models import ModelEntry
from simulator.enums import Algorithm, Engine, Fidelity, Precision, Recompute, Schedule, TopologyKind


class _Section(BaseModel):
    # Infinite or NaN numbers (`.inf`, "1e400") would only surface later as a crash (int(inf),
    # JSON without inf): reject them here as the input errors they are.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ModelSection(ModelEntry):
    """`model:`: a catalogue preset and/or explicit shape fields (explicit fields win)."""

    preset: str | None = None


class ClusterSection(_Section):
    gpu: str
    num_gpus: PositiveInt
    gpus_per_node: PositiveInt = 8
    intra_node_GBps: PositiveFloat | None = None  # default: the GPU's scale-up bandwidth
    inter_node_Gbps: PositiveFloat | None = None  # default: the node's NIC line rate
    nics_per_node: PositiveInt | None = None  # default: the node's NIC count
    topology: TopologyKind = TopologyKind.FAT_TREE
    oversubscription: float = Field(default=1.0, ge=1.0)  # leaf downlink : uplink ratio (1 = non-blocking)
    node_overhead_W: NonNegativeFloat | None = None  # default: the node catalogue's value
    # Collective algorithm; auto picks the fastest by the cost model, as NCCL's tuner does.
    collective_algorithm: Algorithm = Algorithm.AUTO


class ParallelismSection(_Section):
    tp: PositiveInt = 1
    pp: PositiveInt = 1
    dp: PositiveInt | None = None
    cp: PositiveInt = 1
    schedule: Schedule = Schedule.ONE_F_ONE_B
    virtual_stages: PositiveInt = 1
    sequence_parallel: bool = False
    # Default 1: the optimizer state sharded over data-parallel ranks (Megatron-core's distributed
    # optimizer and NeMo's distributed_fused_adam, the default of current LLM training stacks);
    # same communication volume as plain all-reduce (reduce-scatter + all-gather).
    zero: Literal[0, 1, 2, 3] = 1
    recompute: Recompute = Recompute.NONE
    # Extension: with recompute: full, recompute only the first N layers of every pipeline chunk and
    # keep all activations of the others (Megatron-LM --recompute-method block
    # --recompute-num-layers N), trading memory for less recomputation. Default: every layer.
    recompute_layers: PositiveInt | None = None
    # Extension: overlap the data-parallel gradient reduction with the backward pass
    # (PyTorch DDP / Megatron --overlap-grad-reduce). Megatron-LM 2021 did not overlap.
    dp_overlap: bool = False
    # Extension: overlap the all-gathers / reduce-scatters of sequence parallelism with the adjacent
    # GEMMs (Transformer Engine userbuffers; Megatron-Core --tp-comm-overlap, NeMo
    # `tp_comm_overlap`). Needs sequence_parallel. Default: the GPU catalogue's `tp_comm_overlap`
    # (on for Hopper and later) whenever sequence parallelism is on.
    tp_comm_overlap: bool | None = None


class TrainingSection(_Section):
    global_batch: PositiveInt
    micro_batch: PositiveInt = 1
    tokens: PositiveFloat | None = None
    precision: Precision = Precision.BF16
    flash_attention: bool = False


class EnergySection(_Section):
    """Facility and grid. Defaults: see `simulator/specs/economics.yaml`."""

    pue: float | None = Field(default=None, ge=1.0)
    grid_kg_co2_per_kWh: NonNegativeFloat | None = None


class ReliabilitySection(_Section):
    """Failures, checkpoints and restarts over the whole run. Defaults: `simulator/specs/reliability.yaml`.
    checkpoint_interval_s None: the Young/Daly optimum."""

    enabled: bool = False
    gpu_failures_per_hour: NonNegativeFloat | None = None  # per GPU
    node_failures_per_hour: NonNegativeFloat | None = None  # per node: host, network, software
    checkpoint_interval_s: PositiveFloat | None = None
    storage_write_GBps_per_node: PositiveFloat | None = None
    storage_read_GBps_per_node: PositiveFloat | None = None
    restart_s: NonNegativeFloat | None = None  # after an interruption, checkpoint load excluded


class CostSection(_Section):
    usd_per_gpu_hour: NonNegativeFloat | None = None  # default per GPU in economics.yaml
    usd_per_kWh: NonNegativeFloat | None = None  # energy billed separately (0 when the GPU-hour price includes it)


class CatalogueSection(_Section):
    """Scenario-local catalogue entries: a hypothetical accelerator or a private model, inline or in
    YAML files of the same shape (`files`, relative to the scenario file; read by load.py)."""

    files: list[str] = Field(default_factory=list)
    gpus: dict[str, GpuEntry] = Field(default_factory=dict)
    models: dict[str, ModelEntry] = Field(default_factory=dict)


class FrameworkSection(_Section):
    """The training framework. host_time_per_op_us: its host-side cost per modelled op, default
    calibrated on eager Megatron-DeepSpeed (simulator/specs/software.yaml); fused-kernel stacks or
    CUDA graphs need less. fused_cross_entropy: the loss runs as fused kernels over the logits
    (Megatron-Core's cross_entropy_loss_fusion, as NeMo runs it) rather than as separate eager
    passes over an fp32 copy; default: the GPU catalogue's `fused_cross_entropy`."""

    host_time_per_op_us: NonNegativeFloat | None = None
    fused_cross_entropy: bool | None = None


class SimulationSection(_Section):
    """How to simulate. engine: `event` (SimPy, the default) or `analytical` (closed form, for
    quick estimates). fidelity: `symmetric` simulates one representative rank per pipeline stage
    with collectives priced for all concurrent groups; `full` simulates every data-parallel replica."""

    engine: Engine = Engine.EVENT
    fidelity: Fidelity = Fidelity.SYMMETRIC
    # Full fidelity only: per-GPU compute speed varies log-normally with this coefficient of
    # variation (0 = identical GPUs); slow GPUs become stragglers their replicas wait for.
    compute_jitter: float = Field(default=0.0, ge=0.0, le=1.0)


class Scenario(_Section):
    name: str
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
    seed: int = 0
