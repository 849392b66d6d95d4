"""GPU, NIC and node specifications: catalogue entries (units in key names) -> SI dataclasses."""

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from simulator import units
from simulator.bounds import (
    MAX_CLOCK_MHZ,
    MAX_GB,
    MAX_GBPS,
    MAX_LAUNCH_US,
    MAX_SM_COUNT,
    MAX_TENSOR_FLOPS_PER_EXP,
    MAX_TFLOPS,
    MAX_WATTS,
    MIN_CLOCK_MHZ,
    MIN_EFFICIENCY,
    MIN_GB,
    MIN_GBPS,
    MIN_TENSOR_FLOPS_PER_EXP,
    MIN_TFLOPS,
    RealNumber,
    Text,
    WholeNumber,
    within,
)
from simulator.catalog.loader import bundled
from simulator.enums import Precision


class GpuEntry(BaseModel):
    """One GPU as written in a catalogue file (or inline in a scenario). Ranges: simulator/bounds.py."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    vendor: Text = "unknown"
    peak_tflops: dict[Precision, Annotated[RealNumber, within(MIN_TFLOPS, MAX_TFLOPS)]] = Field(min_length=1)
    hbm_GB: Annotated[RealNumber, within(MIN_GB, MAX_GB)]
    hbm_GBps: Annotated[RealNumber, within(MIN_GBPS, MAX_GBPS)]
    tdp_W: Annotated[RealNumber, within(0.0, MAX_WATTS, low_open=True)]
    idle_W: Annotated[RealNumber, within(0.0, MAX_WATTS)]  # at most tdp_W (checked below)
    scale_up_GBps: Annotated[RealNumber, within(MIN_GBPS, MAX_GBPS)]
    sm_count: Annotated[WholeNumber, within(1, MAX_SM_COUNT)]
    gemm_efficiency_max: Annotated[RealNumber, within(MIN_EFFICIENCY, 1.0)]
    gemm_efficiency_fp8: Annotated[RealNumber, within(MIN_EFFICIENCY, 1.0)] | None = (
        None  # default: gemm_efficiency_max
    )
    hbm_efficiency: Annotated[RealNumber, within(MIN_EFFICIENCY, 1.0)]
    flash_attention_efficiency: Annotated[
        RealNumber, within(MIN_EFFICIENCY, 1.0)
    ]  # at the reference head dim (kernels.yaml)
    # Dense BF16 tensor-core FLOPs per exponential of the special-function units (per SM and clock);
    # None: attention's rate does not depend on the head dim (simulator.costs.compute).
    tensor_flops_per_exp: Annotated[RealNumber, within(MIN_TENSOR_FLOPS_PER_EXP, MAX_TENSOR_FLOPS_PER_EXP)] | None = (
        None
    )
    kernel_launch_us: Annotated[RealNumber, within(0.0, MAX_LAUNCH_US)]
    tp_comm_overlap: bool = False  # default of parallelism.tp_comm_overlap on this GPU
    fused_cross_entropy: bool = False  # default of framework.fused_cross_entropy on this GPU
    # GPUs joined by one NVLink fabric in this GPU's standard system, where it spans several compute
    # trays (GB200/GB300 NVL72: 72); None: one node (default of cluster.scale_up_domain).
    scale_up_domain: Annotated[WholeNumber, within(1, MAX_SM_COUNT)] | None = None
    # A measured per-activity power profile of this GPU's generation (power.yaml
    # activity_fraction_by_profile); None: the generic activity table.
    activity_power: str | None = None
    # SM clocks and the lowest settable power limit (gpus.yaml header); all four or none (no clock keys).
    max_clock_MHz: Annotated[RealNumber, within(MIN_CLOCK_MHZ, MAX_CLOCK_MHZ)] | None = None
    min_clock_MHz: Annotated[RealNumber, within(MIN_CLOCK_MHZ, MAX_CLOCK_MHZ)] | None = None
    sustained_clock_MHz: Annotated[RealNumber, within(MIN_CLOCK_MHZ, MAX_CLOCK_MHZ)] | None = None
    min_power_limit_W: Annotated[RealNumber, within(0.0, MAX_WATTS, low_open=True)] | None = None

    @model_validator(mode="after")
    def _clocks_consistent(self) -> "GpuEntry":
        """All four clock keys or none; min <= sustained <= max clock; the lowest power limit within tdp_W."""
        keys = ("max_clock_MHz", "min_clock_MHz", "sustained_clock_MHz", "min_power_limit_W")
        given = [getattr(self, k) is not None for k in keys]
        if any(given) and not all(given):
            missing = ", ".join(k for k, g in zip(keys, given, strict=True) if not g)
            raise PydanticCustomError(
                "clocks_partial", "clock keys come together: missing {missing}", {"missing": missing}
            )
        if all(given):
            assert self.min_clock_MHz is not None and self.max_clock_MHz is not None
            assert self.sustained_clock_MHz is not None and self.min_power_limit_W is not None
            if not self.min_clock_MHz <= self.sustained_clock_MHz <= self.max_clock_MHz:
                raise PydanticCustomError(
                    "clocks_order", "needs min_clock_MHz <= sustained_clock_MHz <= max_clock_MHz", {}
                )
            if self.min_power_limit_W > self.tdp_W:
                raise PydanticCustomError("power_limit_order", "min_power_limit_W must not exceed tdp_W", {})
        return self

    @field_validator("activity_power")
    @classmethod
    def _known_profile(cls, name: str | None) -> str | None:
        profiles = set(bundled("power")["activity_fraction_by_profile"])
        if name is not None and name not in profiles:
            known = ", ".join(sorted(profiles))
            raise PydanticCustomError("unknown_profile", "unknown power profile (known: {known})", {"known": known})
        return name

    @field_validator("idle_W")
    @classmethod
    def _idle_below_tdp(cls, idle_W: float, info: ValidationInfo) -> float:
        """A GPU cannot idle above its power limit (power.py interpolates between the two)."""
        tdp = info.data.get("tdp_W")
        if tdp is not None and idle_W > tdp:
            raise PydanticCustomError("idle_above_tdp", "must not exceed tdp_W ({tdp} W)", {"tdp": tdp})
        return idle_W


@dataclass(frozen=True)
class ClockRange:
    """A GPU's SM clock range (MHz), the clock dense GEMMs sustain under its default power limit (the
    catalogue's compute rates assume it), and the lowest power limit it accepts (W)."""

    max_MHz: float
    min_MHz: float
    sustained_MHz: float
    min_power_limit_W: float


@dataclass(frozen=True)
class GpuSpec:
    """A GPU in SI units. `peak_flops_per_s` maps precision -> dense peak FLOP/s."""

    name: str
    vendor: str
    peak_flops_per_s: Mapping[Precision, float]
    hbm_bytes: float
    hbm_bytes_per_s: float
    tdp_W: float
    idle_W: float
    scale_up_bytes_per_s: float
    sm_count: int
    gemm_efficiency_max: float
    gemm_efficiency_fp8: float
    hbm_efficiency: float
    flash_attention_efficiency: float
    kernel_launch_s: float
    tp_comm_overlap: bool = False
    tensor_flops_per_exp: float | None = None
    fused_cross_entropy: bool = False
    scale_up_domain: int | None = None
    activity_power: str | None = None  # power.yaml profile of measured per-activity power
    clocks: ClockRange | None = None  # None: the catalogue has no clock data (no clock or power-limit keys)

    def supports(self, precision: Precision) -> bool:
        return precision in self.peak_flops_per_s

    def gemm_efficiency(self, precision: Precision) -> float:
        """Best fraction of the dense peak a large GEMM sustains in this precision."""
        return self.gemm_efficiency_fp8 if precision is Precision.FP8 else self.gemm_efficiency_max

    def peak(self, precision: Precision) -> float:
        """Dense peak FLOP/s for a precision (fp16 and bf16 share tensor cores)."""
        return self.peak_flops_per_s[precision]

    @classmethod
    def from_entry(cls, name: str, entry: GpuEntry) -> "GpuSpec":
        peaks = {p: units.tflops_to_flops_per_s(v) for p, v in entry.peak_tflops.items()}
        return cls(
            name=name,
            vendor=entry.vendor,
            peak_flops_per_s=MappingProxyType(peaks),
            hbm_bytes=units.gb_to_bytes(entry.hbm_GB),
            hbm_bytes_per_s=units.gbps_bytes_to_bytes_per_s(entry.hbm_GBps),
            tdp_W=entry.tdp_W,
            idle_W=entry.idle_W,
            scale_up_bytes_per_s=units.gbps_bytes_to_bytes_per_s(entry.scale_up_GBps),
            sm_count=entry.sm_count,
            gemm_efficiency_max=entry.gemm_efficiency_max,
            gemm_efficiency_fp8=entry.gemm_efficiency_fp8 or entry.gemm_efficiency_max,
            hbm_efficiency=entry.hbm_efficiency,
            flash_attention_efficiency=entry.flash_attention_efficiency,
            kernel_launch_s=units.us_to_s(entry.kernel_launch_us),
            tp_comm_overlap=entry.tp_comm_overlap,
            tensor_flops_per_exp=entry.tensor_flops_per_exp,
            fused_cross_entropy=entry.fused_cross_entropy,
            scale_up_domain=entry.scale_up_domain,
            activity_power=entry.activity_power,
            clocks=_clock_range(entry),
        )


def _clock_range(entry: GpuEntry) -> ClockRange | None:
    if entry.max_clock_MHz is None or entry.min_clock_MHz is None or entry.sustained_clock_MHz is None:
        return None
    assert entry.min_power_limit_W is not None, "GpuEntry checks the four clock keys come together"
    return ClockRange(entry.max_clock_MHz, entry.min_clock_MHz, entry.sustained_clock_MHz, entry.min_power_limit_W)


@dataclass(frozen=True)
class NicSpec:
    """A NIC type in SI units: line rate per direction and NIC-to-NIC latency."""

    name: str
    line_rate_bytes_per_s: float
    latency_s: float


@dataclass(frozen=True)
class NodeSpec:
    """A server type: its GPUs, its NICs and their type, and the node's own power draw."""

    name: str
    gpus: int
    nic: NicSpec
    nics: int
    node_overhead_W: float
    pcie_bytes_per_s: float | None = None  # GPU<->NIC PCIe, per direction; None where the catalogue has no value
    max_W: float | None = None  # the system's rated maximum input power (datasheet); None where unknown
    cooling: str = "air"  # how the node is built: "air" or "liquid"
    # what direct liquid cooling saves on the typical overhead of an air-cooled node (fans); None: no
    # liquid-cooled variant in the catalogue
    liquid_cooling_saving_W: float | None = None


def gpu_entries(extra: Mapping[str, GpuEntry] | None = None) -> dict[str, GpuEntry]:
    """Every bundled GPU as written in the catalogue, plus `extra` entries (user files or inline
    definitions) replacing by name."""
    entries = {name: GpuEntry.model_validate(raw) for name, raw in bundled("gpus").items()}
    entries.update(extra or {})
    return entries


def gpu_catalogue(extra: Mapping[str, GpuEntry] | None = None) -> dict[str, GpuSpec]:
    """Every bundled GPU, plus `extra` entries (user files or inline definitions) overriding by name."""
    return {name: GpuSpec.from_entry(name, e) for name, e in gpu_entries(extra).items()}


def nic_catalogue() -> dict[str, NicSpec]:
    raw = bundled("network")["nics"]
    return {
        name: NicSpec(
            name=name,
            line_rate_bytes_per_s=units.gbit_to_bytes_per_s(v["line_rate_Gbps"]),
            latency_s=units.us_to_s(v["latency_us"]),
        )
        for name, v in raw.items()
    }


def node_catalogue() -> dict[str, NodeSpec]:
    nics = nic_catalogue()
    raw = bundled("network")["nodes"]
    return {
        name: NodeSpec(
            name=name,
            gpus=v["gpus"],
            nic=nics[v["nic"]],
            nics=v["nics"],
            node_overhead_W=v["node_overhead_W"],
            pcie_bytes_per_s=units.gbps_bytes_to_bytes_per_s(v["pcie_GBps"]) if "pcie_GBps" in v else None,
            max_W=float(v["max_W"]) if "max_W" in v else None,
            cooling=v.get("cooling", "air"),
            liquid_cooling_saving_W=v.get("liquid_cooling_saving_W"),
        )
        for name, v in raw.items()
    }


def default_node_for(gpu_name: str) -> NodeSpec:
    """The node type a GPU sits in unless the scenario says otherwise (DGX-H100 for unknown GPUs)."""
    name = bundled("network")["default_node_for_gpu"].get(gpu_name, "dgx-h100")
    return node_catalogue()[name]


def nic_line_rate_Gbps(nic_name: str) -> float:
    """A NIC's line rate as the catalogue writes it (Gbit/s), for the resolved scenario's own keys."""
    return bundled("network")["nics"][nic_name]["line_rate_Gbps"]


def nvswitch_latency_s() -> float:
    return units.us_to_s(bundled("network")["scale_up"]["nvswitch_latency_us"])
