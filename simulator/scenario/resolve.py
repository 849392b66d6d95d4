"""Validated Scenario -> Setup: catalogue look-ups, defaults, and the cross-field plan rules.

Every default a catalogue supplies is first written into the scenario in its own keys and units
(`with_defaults`), and the Setup is built from that scenario alone: the resolved scenario saved with
results (canonical.py) then runs on its own and gives the same result, whatever the catalogues
say later."""

from typing import Any, TypeVar

from pydantic import BaseModel

from simulator import units
from simulator.catalog.hardware import GpuSpec, NicSpec, NodeSpec, default_node_for, gpu_entries, nic_line_rate_Gbps
from simulator.catalog.loader import bundled
from simulator.catalog.models import (
    MLA_REQUIRED,
    MOE_REQUIRED,
    REQUIRED_FIELDS,
    ModelEntry,
    ModelSpec,
    missing_fields,
    model_catalogue,
)
from simulator.catalog.stacks import StackProfile, stack_profile, stack_profiles, with_attention_kernel
from simulator.enums import Cooling, CudaGraphs, Dispatcher, Fidelity, Precision, Recompute, Schedule
from simulator.scenario.errors import ConfigError
from simulator.scenario.rules import (
    batch_problem,
    chunks_problem,
    cp_problem,
    interleave_problem,
    job_scale_up_domain,
    moe_problems,
    moe_shape_problems,
    node_problem,
    scale_up_problem,
    simulated_passes_problem,
    tp_problems,
)
from simulator.scenario.schema import ClusterSection, FrameworkSection, Scenario
from simulator.scenario.setup import (
    ClockSetting,
    ClusterSpec,
    Economics,
    ParallelPlan,
    ReliabilitySpec,
    Setup,
    TrainingSpec,
)

T = TypeVar("T")


def resolve(sc: Scenario) -> Setup:
    sc = with_node_size(sc)
    model, gpu = resolve_model_and_gpu(sc)
    problems = stack_problems(sc)
    sc = with_stack(sc)
    gpu = with_attention_kernel(gpu, sc.framework.flash_attention_version)
    plan = _resolve_plan(sc, model, gpu, problems)
    _check_training(sc, model, gpu, plan, problems)
    problems += cooling_problems(sc.cluster)
    problems += clock_problems(sc.cluster, gpu)
    if problems:
        raise ConfigError(problems)
    sc = with_defaults(sc, gpu)
    return Setup(
        name=sc.name,
        model=model,
        cluster=_resolve_cluster(sc, gpu, plan),
        plan=plan,
        training=TrainingSpec(
            global_batch=sc.training.global_batch,
            micro_batch=sc.training.micro_batch,
            tokens=sc.training.tokens,
            precision=sc.training.precision,
            flash_attention=sc.training.flash_attention,
        ),
        economics=_resolve_economics(sc),
        seed=sc.seed,
        scenario=sc,
        engine=sc.simulation.engine,
        fidelity=sc.simulation.fidelity,
        compute_jitter=sc.simulation.compute_jitter,
        host_time_per_op_s=units.us_to_s(_filled_in(sc.framework.host_time_per_op_us)),
        cuda_graphs=_filled_in(sc.framework.cuda_graphs),
        fused_cross_entropy=(
            gpu.fused_cross_entropy if sc.framework.fused_cross_entropy is None else sc.framework.fused_cross_entropy
        ),
        reliability=_resolve_reliability(sc),
    )


def resolve_model_and_gpu(sc: Scenario) -> tuple[ModelSpec, GpuSpec]:
    """The model and the GPU alone, without the plan (a search enumerates the plans itself)."""
    problems: list[str] = []
    model = _resolve_model(sc, problems)
    gpu = _resolve_gpu(sc, problems)
    if model is None or gpu is None:
        raise ConfigError(problems)
    return model, gpu


def _resolve_model(sc: Scenario, problems: list[str]) -> ModelSpec | None:
    if sc.model.hf_config is not None:
        # load.py folds the file into the model keys as it reads a scenario file (or mapping); a
        # Scenario validated from a mapping that skipped that step still names it.
        problems.append(
            "model.hf_config: not read here (a config.json is folded in when the scenario is loaded, "
            "relative to its file); give the model keys instead"
        )
        return None
    presets = model_catalogue(sc.catalogue.models)
    # Only the keys the scenario gives: a partial `moe:` overlays the preset's key by key.
    given = sc.model.model_dump(exclude={"preset", "hf_config"}, exclude_unset=True, exclude_none=True)
    explicit = ModelEntry.model_validate(given)
    base = ModelEntry()
    name = sc.model.preset or sc.name
    if sc.model.preset is not None:
        if sc.model.preset not in presets:
            problems.append(f"model.preset: unknown model {sc.model.preset!r} (known: {', '.join(sorted(presets))})")
            return None
        base = presets[sc.model.preset]
    entry = base.overlay(explicit)
    hint = (
        f"neither model.preset {sc.model.preset!r} nor model: gives them"
        if sc.model.preset
        else "give them in model:, or name a model.preset"
    )
    if missing := missing_fields(entry, REQUIRED_FIELDS):
        problems.append(f"model: missing {', '.join(missing)} ({hint})")
        return None
    nested = [
        f"model.{key}: missing {', '.join(missing)} ({hint})"
        for key, sub, required in (("moe", entry.moe, MOE_REQUIRED), ("mla", entry.mla, MLA_REQUIRED))
        if sub is not None and (missing := missing_fields(sub, required))
    ]
    if nested:
        problems += nested
        return None
    model = ModelSpec.from_entry(name, entry)
    before = len(problems)
    if entry.head_dim is None and model.mla is None and model.hidden % model.heads:
        problems.append(
            f"model.heads: must divide model.hidden ({model.hidden}), got {model.heads} (or set model.head_dim)"
        )
    if model.heads % model.kv_heads:
        problems.append(f"model.kv_heads: must divide model.heads ({model.heads}), got {model.kv_heads}")
    if model.mla is not None and model.kv_heads != model.heads:
        problems.append(
            f"model.kv_heads: multi-head latent attention has one key/value head per query head "
            f"({model.heads}), got {model.kv_heads}"
        )
    problems += moe_shape_problems(model)
    return model if len(problems) == before else None


def _resolve_gpu(sc: Scenario, problems: list[str]) -> GpuSpec | None:
    gpus = gpu_entries(sc.catalogue.gpus)
    if sc.cluster.gpu not in gpus:
        problems.append(f"cluster.gpu: unknown GPU {sc.cluster.gpu!r} (known: {', '.join(sorted(gpus))})")
        return None
    return GpuSpec.from_entry(sc.cluster.gpu, gpus[sc.cluster.gpu])


def _resolve_plan(sc: Scenario, model: ModelSpec, gpu: GpuSpec, problems: list[str]) -> ParallelPlan:
    p, c = sc.parallelism, sc.cluster
    mp = p.tp * p.pp * p.cp
    dp = p.dp if p.dp is not None else max(1, c.num_gpus // mp)
    if c.num_gpus % mp:
        problems.append(f"parallelism: tp*pp*cp = {mp} does not divide cluster.num_gpus ({c.num_gpus})")
    elif mp * dp != c.num_gpus:
        problems.append(f"parallelism.dp: tp*pp*cp*dp = {mp * dp} must equal cluster.num_gpus ({c.num_gpus})")
    problems += tp_problems(model, p.tp)
    if chunks := chunks_problem(model, p.pp, p.virtual_stages):
        problems.append(chunks)
    if p.virtual_stages > 1 and p.schedule is not Schedule.INTERLEAVED:
        problems.append("parallelism.virtual_stages: more than 1 needs schedule: interleaved")
    if cp := cp_problem(model, p.cp):
        problems.append(cp)
    gpus_per_node = node_size(c)
    if nodes := node_problem(c.num_gpus, gpus_per_node):
        problems.append(nodes)
    if c.scale_up_domain is not None and (domain := scale_up_problem(c.scale_up_domain, gpus_per_node)):
        problems.append(domain)
    if p.recompute_layers is not None and p.recompute is not Recompute.FULL:
        problems.append(
            "parallelism.recompute_layers: needs recompute: full (it counts the layers of each pipeline "
            "chunk that recompute their forward)"
        )
    etp = p.etp if p.etp is not None else p.tp
    problems += moe_problems(model, p.tp, p.cp, dp, p.ep, etp, p.sequence_parallel)
    if model.moe is None:
        for key, default in (("etp", None), ("moe_dispatcher", Dispatcher.ALLTOALL), ("moe_overlap", False)):
            if getattr(p, key) != default:
                problems.append(f"parallelism.{key}: needs model.moe (a mixture of experts)")
    if p.moe_overlap and p.schedule is Schedule.GPIPE:
        problems.append(
            "parallelism.moe_overlap: needs schedule 1f1b or interleaved (it pairs one micro-batch's forward "
            "with another's backward)"
        )
    schedule = p.schedule
    if schedule is Schedule.INTERLEAVED and p.virtual_stages == 1:
        schedule = Schedule.ONE_F_ONE_B  # one chunk per GPU: interleaving degenerates to 1F1B
    return ParallelPlan(
        tp=p.tp,
        pp=p.pp,
        dp=dp,
        cp=p.cp,
        schedule=schedule,
        virtual_stages=p.virtual_stages,
        sequence_parallel=p.sequence_parallel,
        zero=p.zero,
        recompute=p.recompute,
        dp_overlap=bool(p.dp_overlap),
        recompute_layers=p.recompute_layers,
        tp_comm_overlap=tp_comm_overlap(p.tp_comm_overlap, p.sequence_parallel, p.tp, gpu),
        ep=p.ep,
        etp=etp,
        moe_dispatcher=p.moe_dispatcher,
        moe_overlap=p.moe_overlap,
        param_gather_overlap=bool(sc.framework.overlap_param_gather and p.dp_overlap) and p.zero in (1, 2),
        fp8_param_gather=bool(sc.framework.fp8_param_gather) and sc.training.precision is Precision.FP8,
        fp32_gradients=bool(sc.framework.fp32_gradients) and sc.training.precision in (Precision.BF16, Precision.FP8),
    )


def stack_problems(sc: Scenario) -> list[str]:
    """An unknown `framework.stack`, and explicit overlap settings the plan cannot honour (a stack's
    defaults apply only where they can: its FP8 gathers only in FP8 runs, its tensor-parallel overlap
    only with sequence parallelism)."""
    problems: list[str] = []
    if sc.parallelism.tp_comm_overlap and not sc.parallelism.sequence_parallel:
        problems.append(
            "parallelism.tp_comm_overlap: needs sequence_parallel: true (the overlapped collectives are "
            "sequence parallelism's all-gathers and reduce-scatters)"
        )
    if stack_profile(sc.framework.stack) is None:
        known = ", ".join(sorted(stack_profiles()))
        problems.append(f"framework.stack: unknown stack {sc.framework.stack!r} (known: {known})")
    if sc.framework.overlap_param_gather:
        if sc.parallelism.zero not in (1, 2):
            problems.append(
                "framework.overlap_param_gather: needs parallelism.zero 1 or 2 (the weight all-gather after "
                "a sharded optimizer step; ZeRO-3 gathers per layer anyway)"
            )
        if sc.parallelism.dp_overlap is False:
            problems.append(
                "framework.overlap_param_gather: needs parallelism.dp_overlap (Megatron-Core requires "
                "--overlap-grad-reduce with --overlap-param-gather)"
            )
    if sc.framework.fp8_param_gather and sc.training.precision is not Precision.FP8:
        problems.append(f"framework.fp8_param_gather: needs training.precision fp8 (got {sc.training.precision.value})")
    return problems


def with_stack(sc: Scenario) -> Scenario:
    """`sc` with the keys it leaves unset taken from its `framework.stack` profile (the generic one when
    it names none, or an unknown one: stack_problems reports that). An explicit overlap_param_gather
    brings dp_overlap with it, as Megatron-Core requires."""
    profile = stack_profile(sc.framework.stack) or stack_profile(None)
    assert profile is not None, "specs/stacks.yaml has the generic profile"
    # every profile setting that is a framework key (the others are parallelism keys, below)
    framework = {k: getattr(profile, k) for k in StackProfile.model_fields.keys() & FrameworkSection.model_fields}
    dp_overlap = profile.dp_overlap or bool(sc.framework.overlap_param_gather)
    parallelism = {"dp_overlap": dp_overlap, "tp_comm_overlap": profile.tp_comm_overlap}
    return sc.model_copy(
        update={
            "framework": _filled(sc.framework, framework),
            "parallelism": _filled(sc.parallelism, parallelism),
        }
    )


def tp_comm_overlap(requested: bool | None, sequence_parallel: bool, tp: int, gpu: GpuSpec) -> bool:
    """Whether TP collectives overlap GEMMs: as requested, else the GPU catalogue's default; only
    sequence parallelism's all-gathers / reduce-scatters can (Megatron-Core asserts the same)."""
    wanted = gpu.tp_comm_overlap if requested is None else requested
    return wanted and sequence_parallel and tp > 1


def _check_training(sc: Scenario, model: ModelSpec, gpu: GpuSpec, plan: ParallelPlan, problems: list[str]) -> None:
    t = sc.training
    if batch := batch_problem(t.global_batch, plan.dp, t.micro_batch):
        problems.append(batch)
    micro_batches = t.global_batch // max(1, plan.dp * t.micro_batch)
    if plan.schedule is Schedule.INTERLEAVED and (interleave := interleave_problem(micro_batches, plan.pp)):
        problems.append(interleave)
    replicas = plan.dp if sc.simulation.fidelity is Fidelity.FULL else 1
    if passes := simulated_passes_problem(micro_batches, plan.chunks, replicas):
        problems.append(passes)
    if not gpu.supports(t.precision):
        have = ", ".join(p.value for p in gpu.peak_flops_per_s)
        problems.append(f"training.precision: {gpu.name} has no {t.precision.value} support (has {have})")
    if sc.framework.cuda_graphs is CudaGraphs.FULL_ITERATION and model.moe and model.moe.dropless:
        problems.append(
            "framework.cuda_graphs: full_iteration cannot capture a dropless MoE model (its token routing "
            "syncs with the host every layer; Megatron-Core MoE README); use layers, or pad experts to "
            "model.moe.capacity_factor"
        )


def clock_problems(cluster: ClusterSection, gpu: GpuSpec) -> list[str]:
    """A locked clock or power limit the GPU cannot take: outside its catalogued range, or on a GPU whose
    catalogue entry has no clock data. (A clock above what the limit allows is not an error: it is
    clipped, costs/clocks.py.)"""
    asked = [
        (k, v)
        for k, v in (("gpu_clock_MHz", cluster.gpu_clock_MHz), ("gpu_power_limit_W", cluster.gpu_power_limit_W))
        if v is not None
    ]
    if not asked:
        return []
    r = gpu.clocks
    if r is None:
        return [
            f"cluster.{k}: the GPU catalogue has no clock data for {gpu.name} (max_clock_MHz, min_clock_MHz, "
            f"sustained_clock_MHz, min_power_limit_W)"
            for k, _ in asked
        ]
    ranges = {
        "gpu_clock_MHz": (r.min_MHz, r.max_MHz, "MHz"),
        "gpu_power_limit_W": (r.min_power_limit_W, gpu.tdp_W, "W"),
    }
    problems = []
    for key, value in asked:
        low, high, unit = ranges[key]
        if not low <= value <= high:
            problems.append(f"cluster.{key}: {gpu.name} takes {low:g}-{high:g} {unit}, got {value:g}")
    return problems


DEFAULT_GPUS_PER_NODE = 8  # docs/contract.md section 1: `gpus_per_node` optional, default 8


def cooling_problems(cluster: ClusterSection) -> list[str]:
    """A cooling the GPU's catalogue node is not built with: liquid for an air-cooled node with no
    liquid-cooled variant in the catalogue (no `liquid_cooling_saving_W`), air for a liquid-only tray."""
    if cluster.cooling is None:
        return []
    node = default_node_for(cluster.gpu)
    if cluster.cooling.value == node.cooling:
        return []
    if cluster.cooling is Cooling.LIQUID and node.liquid_cooling_saving_W is not None:
        return []
    if node.cooling == Cooling.LIQUID.value:
        why = f"{node.name} is built liquid-cooled only (cold plates on its CPUs and GPUs)"
    else:
        why = f"the node catalogue has no measured liquid-cooled variant of {node.name}"
    return [f"cluster.cooling: {cluster.cooling.value} is not available for {cluster.gpu}: {why}"]


def node_overhead_W(node: NodeSpec, cooling: Cooling) -> float:
    """The catalogue node's typical overhead under `cooling`: as built, less the fans' share
    (`liquid_cooling_saving_W`, network.yaml) for a liquid-cooled variant of an air-cooled node."""
    if cooling.value != node.cooling and cooling is Cooling.LIQUID and node.liquid_cooling_saving_W is not None:
        return node.node_overhead_W - node.liquid_cooling_saving_W
    return node.node_overhead_W


def node_size(cluster: ClusterSection) -> int:
    """GPUs per node: `cluster.gpus_per_node`, else the contract's default of 8 (for a GB200/GB300
    NVL72 rack: two compute trays, their NICs and power together; see `with_defaults`)."""
    if cluster.gpus_per_node is not None:
        return cluster.gpus_per_node
    return DEFAULT_GPUS_PER_NODE


def with_node_size(sc: Scenario) -> Scenario:
    """`sc` with `cluster.gpus_per_node` written in (node_size): the plan rules count nodes."""
    if sc.cluster.gpus_per_node is not None:
        return sc
    return sc.model_copy(update={"cluster": _filled(sc.cluster, {"gpus_per_node": node_size(sc.cluster)})})


def with_defaults(sc: Scenario, gpu: GpuSpec) -> Scenario:
    """`sc` with every default the catalogues supply written in, in the scenario's own keys and units:
    network rates (node and GPU catalogues), energy and prices (economics.yaml), failure, storage and
    restart rates (reliability.yaml), the framework's host time per op (software.yaml). Values the
    scenario gives stay; `reliability.checkpoint_interval_s` stays unset (None: the Young/Daly optimum)."""
    node = default_node_for(sc.cluster.gpu)
    economics, reliability = bundled("economics"), bundled("reliability")
    gpus_per_node = node_size(sc.cluster)
    # A node of several catalogue nodes (8 GPUs of 4-GPU NVL72 compute trays) has all their NICs and draws
    # all their overhead; otherwise the catalogue node's own.
    units_per_node = gpus_per_node // node.gpus if gpus_per_node % node.gpus == 0 else 1
    cooling = sc.cluster.cooling or Cooling(node.cooling)
    network = {
        "cooling": cooling,
        "node_max_W": node.max_W * units_per_node if node.max_W is not None else None,
        "gpus_per_node": gpus_per_node,
        "intra_node_GBps": gpu_entries(sc.catalogue.gpus)[sc.cluster.gpu].scale_up_GBps,
        "inter_node_Gbps": nic_line_rate_Gbps(node.nic.name),
        "nics_per_node": node.nics * units_per_node,
        "node_overhead_W": node_overhead_W(node, cooling) * units_per_node,
        "scale_up_domain": gpu.scale_up_domain or gpus_per_node,
    }
    price = economics["usd_per_gpu_hour"].get(gpu.name, economics["usd_per_gpu_hour_unknown"])
    failures_and_storage = (
        "gpu_failures_per_hour",
        "node_failures_per_hour",
        "storage_write_GBps_per_node",
        "storage_read_GBps_per_node",
        "restart_s",
    )
    return sc.model_copy(
        update={
            "cluster": _filled(sc.cluster, network),
            "energy": _filled(sc.energy, {k: economics[k] for k in ("pue", "grid_kg_co2_per_kWh")}),
            "cost": _filled(sc.cost, {"usd_per_gpu_hour": price, "usd_per_kWh": economics["usd_per_kWh"]}),
            "reliability": _filled(sc.reliability, {k: reliability[k] for k in failures_and_storage}),
            "framework": _filled(
                sc.framework,
                {"host_time_per_op_us": bundled("software")["host_dispatch_us"], "cuda_graphs": CudaGraphs.NONE},
            ),
        }
    )


def _filled_in(value: T | None) -> T:
    """A key `with_defaults` has filled in (None there would be a bug, not an input error)."""
    assert value is not None, "with_defaults fills in every default"
    return value


def _filled(section: BaseModel, defaults: dict[str, Any]) -> BaseModel:
    """`section` with `defaults` for the keys it leaves unset (None)."""
    return section.model_copy(update={k: v for k, v in defaults.items() if getattr(section, k) is None})


def _resolve_cluster(sc: Scenario, gpu: GpuSpec, plan: ParallelPlan) -> ClusterSpec:
    """From a scenario with its defaults written in (with_defaults)."""
    c = sc.cluster
    nic = default_node_for(c.gpu).nic
    gpus_per_node = _filled_in(c.gpus_per_node)
    return ClusterSpec(
        gpu=gpu,
        num_gpus=c.num_gpus,
        gpus_per_node=gpus_per_node,
        intra_node_bytes_per_s=units.gbps_bytes_to_bytes_per_s(_filled_in(c.intra_node_GBps)),
        nic=NicSpec(nic.name, units.gbit_to_bytes_per_s(_filled_in(c.inter_node_Gbps)), nic.latency_s),
        nics_per_node=_filled_in(c.nics_per_node),
        topology=c.topology,
        oversubscription=c.oversubscription,
        node_overhead_W=_filled_in(c.node_overhead_W),
        node_max_W=c.node_max_W,
        cooling=_filled_in(c.cooling),
        collective_algorithm=c.collective_algorithm,
        clock=ClockSetting(c.gpu_clock_MHz, c.gpu_power_limit_W),
        scale_up_domain=job_scale_up_domain(
            _filled_in(c.scale_up_domain), gpus_per_node, c.num_gpus, plan.ep * plan.etp if plan.ep > 1 else 1
        ),
    )


def _resolve_economics(sc: Scenario) -> Economics:
    """From a scenario with its defaults written in (with_defaults)."""
    return Economics(
        pue=_filled_in(sc.energy.pue),
        grid_kg_co2_per_kWh=_filled_in(sc.energy.grid_kg_co2_per_kWh),
        usd_per_gpu_hour=_filled_in(sc.cost.usd_per_gpu_hour),
        usd_per_kWh=_filled_in(sc.cost.usd_per_kWh),
    )


def _resolve_reliability(sc: Scenario) -> ReliabilitySpec:
    """From a scenario with its defaults written in (with_defaults)."""
    r = sc.reliability
    return ReliabilitySpec(
        enabled=r.enabled,
        gpu_failures_per_hour=float(_filled_in(r.gpu_failures_per_hour)),
        node_failures_per_hour=float(_filled_in(r.node_failures_per_hour)),
        checkpoint_interval_s=r.checkpoint_interval_s,
        checkpoint_bytes_per_param=float(bundled("reliability")["checkpoint_bytes_per_param"]),
        write_bytes_per_s_per_node=units.gbps_bytes_to_bytes_per_s(float(_filled_in(r.storage_write_GBps_per_node))),
        read_bytes_per_s_per_node=units.gbps_bytes_to_bytes_per_s(float(_filled_in(r.storage_read_GBps_per_node))),
        restart_s=float(_filled_in(r.restart_s)),
    )
