"""Resolved, frozen configuration objects (SI units) that every later stage reads."""

from dataclasses import dataclass

from simulator.catalog.hardware import GpuSpec, NicSpec
from simulator.catalog.models import ModelSpec
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
from simulator.scenario.schema import Scenario


@dataclass(frozen=True)
class ClockSetting:
    """The GPUs' SM clock and power limit as set (costs/clocks.py settles each activity's clock from
    them): a locked SM clock (None: boost freely) and a board power limit (None: the GPU's tdp_W)."""

    sm_clock_MHz: float | None = None
    power_limit_W: float | None = None

    @property
    def is_default(self) -> bool:
        return self.sm_clock_MHz is None and self.power_limit_W is None


@dataclass(frozen=True)
class ClusterSpec:
    """The cluster as simulated: GPU, scale-up and scale-out links, topology and collective algorithm."""

    gpu: GpuSpec
    num_gpus: int
    gpus_per_node: int
    intra_node_bytes_per_s: float  # per GPU, per direction (NVLink/NVSwitch)
    nic: NicSpec  # line rate already overridden by the scenario when it sets inter_node_Gbps
    nics_per_node: int
    topology: TopologyKind
    oversubscription: float
    node_overhead_W: float
    collective_algorithm: Algorithm = Algorithm.AUTO
    scale_up_domain: int = 0  # GPUs per NVLink fabric; 0 in the constructor = gpus_per_node
    node_max_W: float | None = None  # the node's rated maximum input power; None where not known
    cooling: Cooling = Cooling.AIR
    clock: ClockSetting = ClockSetting()  # cluster.gpu_clock_MHz and cluster.gpu_power_limit_W
    # A locked SM clock per pipeline stage (MHz; None: that stage at `clock`), each capped by `clock`;
    # () = every stage at `clock`. Set by the energy-bloat planner (energy/bloat.py), which prices the
    # step's energy stage by stage (energy/power.step_energy_per_gpu; the power timeline does not).
    stage_clocks_MHz: tuple[float | None, ...] = ()

    def stage_clock(self, stage: int) -> ClockSetting:
        """The clock setting of pipeline stage `stage`: the cluster's, with its own locked clock if planned."""
        f = self.stage_clocks_MHz[stage] if self.stage_clocks_MHz else None
        if f is None:
            return self.clock
        locked = f if self.clock.sm_clock_MHz is None else min(f, self.clock.sm_clock_MHz)
        return ClockSetting(locked, self.clock.power_limit_W)

    def __post_init__(self) -> None:
        if self.scale_up_domain == 0:
            object.__setattr__(self, "scale_up_domain", self.gpus_per_node)

    @property
    def num_nodes(self) -> int:
        return -(-self.num_gpus // self.gpus_per_node)


@dataclass(frozen=True)
class ParallelPlan:
    """How the model is split: parallel degrees, pipeline schedule, ZeRO stage and recompute policy."""

    tp: int
    pp: int
    dp: int
    cp: int
    schedule: Schedule
    virtual_stages: int
    sequence_parallel: bool
    zero: int
    recompute: Recompute
    dp_overlap: bool
    tp_comm_overlap: bool = False  # resolved: only ever True with sequence parallelism and tp > 1
    recompute_layers: int | None = None  # full recompute of only the first N layers per chunk (None: all)
    ep: int = 1  # expert parallel
    etp: int = 0  # tensor parallel inside experts; 0 in the constructor = tp
    moe_dispatcher: Dispatcher = Dispatcher.ALLTOALL
    moe_overlap: bool = False
    # resolved: ZeRO-1/2 weight all-gather per bucket behind each chunk's first forward (needs dp_overlap)
    param_gather_overlap: bool = False
    fp8_param_gather: bool = False  # resolved: the gathered weights are FP8 (only in FP8 runs)
    fp32_gradients: bool = False  # resolved: BF16/FP8 runs keep and reduce fp32 gradients (Megatron main grads)

    def __post_init__(self) -> None:
        if self.etp == 0:
            object.__setattr__(self, "etp", self.tp)

    @property
    def expert_dp(self) -> int:
        """Expert-data-parallel ranks: those of the stage's tp x cp x dp that hold the same experts
        (Megatron-Core parallel folding: tp*cp*dp / (ep*etp)). They reduce the experts' gradients and
        shard the experts' optimizer state, as dp_group does for the dense parameters."""
        return max(1, self.tp * self.cp * self.dp // (self.ep * self.etp))

    def recomputed_layers(self, chunk_layers: int) -> int:
        """Layers of a pipeline chunk that recompute their forward in the backward pass: all of them
        under selective or full recompute, the first `recompute_layers` with a block limit (Megatron
        --recompute-method block), none without recompute."""
        if self.recompute is Recompute.NONE:
            return 0
        if self.recompute is Recompute.FULL and self.recompute_layers is not None:
            return min(self.recompute_layers, chunk_layers)
        return chunk_layers

    @property
    def chunks(self) -> int:
        """Model chunks the layers are split over: pp * virtual_stages."""
        return self.pp * self.virtual_stages

    @property
    def dp_group(self) -> int:
        """Ranks that hold the same weights and reduce their gradients together: DP x CP (context-parallel
        ranks split the sequence, not the model)."""
        return self.dp * self.cp

    @property
    def model_parallel(self) -> int:
        return self.tp * self.pp * self.cp


@dataclass(frozen=True)
class TrainingSpec:
    """Batch sizes (sequences), token budget and precision of the training run."""

    global_batch: int
    micro_batch: int
    tokens: float | None
    precision: Precision
    flash_attention: bool

    def micro_batches_per_step(self, dp: int) -> int:
        """Micro-batches each pipeline runs per optimizer step."""
        return self.global_batch // (dp * self.micro_batch)


@dataclass(frozen=True)
class Economics:
    """Facility and price factors: PUE, grid carbon intensity, GPU-hour and energy prices."""

    pue: float
    grid_kg_co2_per_kWh: float
    usd_per_gpu_hour: float
    usd_per_kWh: float


@dataclass(frozen=True)
class ReliabilitySpec:
    """Resolved reliability model inputs (SI units; rates per hour as in the catalogue). Every value
    comes from the scenario or specs/reliability.yaml."""

    enabled: bool
    gpu_failures_per_hour: float
    node_failures_per_hour: float
    checkpoint_interval_s: float | None  # None: the Young/Daly optimum
    checkpoint_bytes_per_param: float
    write_bytes_per_s_per_node: float
    read_bytes_per_s_per_node: float
    restart_s: float


@dataclass(frozen=True)
class Setup:
    """Everything one simulation needs, validated and resolved."""

    name: str
    model: ModelSpec
    cluster: ClusterSpec
    plan: ParallelPlan
    training: TrainingSpec
    economics: Economics
    seed: int
    scenario: Scenario  # the validated input with every catalogue default written in (saved as the resolved scenario)
    engine: Engine
    fidelity: Fidelity
    compute_jitter: float
    host_time_per_op_s: float  # framework CPU time per modelled op (program/segments.py)
    cuda_graphs: CudaGraphs  # what the framework replays as CUDA graphs (program/segments.py)
    fused_cross_entropy: bool  # resolved: the loss as fused kernels (workload/head.py)
    reliability: ReliabilitySpec

    @property
    def micro_batches(self) -> int:
        return self.training.micro_batches_per_step(self.plan.dp)

    @property
    def tokens_per_step(self) -> int:
        return self.training.global_batch * self.model.seq_len
