"""SM clocks and power limits: the clock each activity settles at, how much slower compute-bound work runs,
and each activity's GPU power from the DVFS curve (power.yaml `dvfs`; issue 14 item 3).

Power of an activity at the default settings: P = idle + f(activity) x (TDP - idle) (power.yaml
`activity_fraction`). Its part above idle in the SM clock domain (`sm_clock_share`) scales with the clock as
dynamic CMOS power does, f V(f)^2 (Mei, Wang and Chu 2017, sec. 2), the voltage rising linearly along the
voltage-frequency curve from `voltage_at_min_clock` x V(max) at the lowest clock to V(max) at the maximum
boost clock; the rest (HBM, links) and idle do not scale.

Which clock: compute-bound activities (`compute_bound`: GEMMs, attention, recomputation) run at the clock
dense GEMMs sustain under the power limit: the catalogue's `sustained_clock_MHz` under the default limit
(tdp_W; the catalogue's compute rates assume it), lower under a lower limit, where the GEMM's power meets
it (the binding case: the GPU's power controller throttles the clock until the board fits). Every other
activity runs at up to the maximum boost clock, lowered only as far as its own power must to fit. A
locked clock (`cluster.gpu_clock_MHz`, nvidia-smi --lock-gpu-clocks) caps them all; where it is above what
the power limit allows, the limit wins (the power controller still throttles a locked clock: NVIDIA's
"SW Power Cap" clock event reason), so the clock is clipped to the limit's.
"""

from dataclasses import dataclass
from functools import cache

from simulator.catalog.hardware import ClockRange, GpuSpec
from simulator.catalog.loader import bundled
from simulator.enums import Category
from simulator.scenario.setup import ClockSetting

CLOCK_STEP_MHZ = 15.0  # nvidia-smi -q -d SUPPORTED_CLOCKS lists SM clocks ~15 MHz apart (A100, H100)
BISECTION_STEPS = 60  # halvings of the clock range where a power limit binds: far below 1 Hz


@cache
def activity_fraction(profile: str | None = None) -> dict[Category, float]:
    """Each activity's share of the idle-to-TDP range (power.yaml), with a GPU generation's measured
    `profile` (power.yaml activity_fraction_by_profile) laid over the generic table."""
    spec = bundled("power")
    raw = {**spec["activity_fraction"], **(spec["activity_fraction_by_profile"][profile] if profile else {})}
    return {Category(k): float(v) for k, v in raw.items()}


def gpu_power_W(category: Category, idle_W: float, tdp_W: float, profile: str | None = None) -> float:
    """P = idle + f(category) * (TDP - idle), at the default clocks; never above TDP since f <= 1."""
    return idle_W + activity_fraction(profile)[category] * (tdp_W - idle_W)


@dataclass(frozen=True)
class Dvfs:
    """power.yaml `dvfs`: the voltage curve's low end, each activity's SM-clock share of its power above
    idle, and the activities that run at the GEMMs' sustained clock."""

    voltage_at_min_clock: float
    sm_clock_share: dict[Category, float]
    compute_bound: frozenset[Category]


@cache
def dvfs() -> Dvfs:
    raw = bundled("power")["dvfs"]
    return Dvfs(
        voltage_at_min_clock=float(raw["voltage_at_min_clock"]),
        sm_clock_share={Category(k): float(v) for k, v in raw["sm_clock_share"].items()},
        compute_bound=frozenset(Category(c) for c in raw["compute_bound"]),
    )


def voltage_fraction(clock_MHz: float, clocks: ClockRange) -> float:
    """V(f) / V(max clock): linear from voltage_at_min_clock at the lowest clock to 1 at the highest."""
    v0 = dvfs().voltage_at_min_clock
    span = clocks.max_MHz - clocks.min_MHz
    x = (clock_MHz - clocks.min_MHz) / span if span > 0 else 1.0
    return v0 + (1.0 - v0) * x


def dynamic_power_ratio(clock_MHz: float, reference_MHz: float, clocks: ClockRange) -> float:
    """Dynamic power at `clock_MHz` over that at `reference_MHz`: f V(f)^2 / (f_ref V(f_ref)^2)."""
    v, v_ref = voltage_fraction(clock_MHz, clocks), voltage_fraction(reference_MHz, clocks)
    return clock_MHz * v * v / (reference_MHz * v_ref * v_ref)


def power_at_clock_W(
    base_W: float, idle_W: float, share: float, clock_MHz: float, reference_MHz: float, clocks: ClockRange
) -> float:
    """An activity drawing `base_W` at `reference_MHz`, at `clock_MHz`: idle + (base - idle) x ((1 - s) +
    s x dynamic_power_ratio), s its SM-clock share."""
    if clock_MHz == reference_MHz:
        return base_W
    ratio = dynamic_power_ratio(clock_MHz, reference_MHz, clocks)
    return idle_W + (base_W - idle_W) * ((1.0 - share) + share * ratio)


def reference_clock_MHz(category: Category, clocks: ClockRange) -> float:
    """The clock an activity runs at, and its catalogued power was measured at, under the defaults."""
    return clocks.sustained_MHz if category in dvfs().compute_bound else clocks.max_MHz


def _settled_MHz(gpu: GpuSpec, clocks: ClockRange, category: Category, setting: ClockSetting) -> float:
    """The highest clock up to the activity's reference (and the locked clock) at which its power fits
    under the limit; the lowest clock where even that does not fit (validation keeps the limit above
    the GPU's lowest settable one)."""
    ref = reference_clock_MHz(category, clocks)
    top = ref if setting.sm_clock_MHz is None else min(ref, setting.sm_clock_MHz)
    limit = gpu.tdp_W if setting.power_limit_W is None else setting.power_limit_W
    base = gpu_power_W(category, gpu.idle_W, gpu.tdp_W, gpu.activity_power)
    share = dvfs().sm_clock_share[category]

    def fits(f: float) -> bool:
        return power_at_clock_W(base, gpu.idle_W, share, f, ref, clocks) <= limit

    if fits(top):
        return top
    lo, hi = clocks.min_MHz, top
    if not fits(lo):
        return lo
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def activity_clock_MHz(gpu: GpuSpec, category: Category, setting: ClockSetting) -> float | None:
    """The SM clock `category` runs at under `setting` (module docstring): compute-bound activities at the
    GEMM's settled clock, the others at their own; None for a GPU without clock data."""
    clocks = gpu.clocks
    if clocks is None:
        return None
    binding = Category.GEMM if category in dvfs().compute_bound else category
    return _settled_MHz(gpu, clocks, binding, setting)


def compute_clock_scale(gpu: GpuSpec, setting: ClockSetting) -> float:
    """Compute-bound work's speed relative to the catalogue's rates: the GEMM's settled clock over the
    sustained clock those rates assume (1 under the defaults or without clock data)."""
    clocks = gpu.clocks
    if clocks is None or setting.is_default:
        return 1.0
    f = activity_clock_MHz(gpu, Category.GEMM, setting)
    assert f is not None
    return f / clocks.sustained_MHz


def activity_power_at_W(gpu: GpuSpec, category: Category, setting: ClockSetting) -> float:
    """`gpu`'s power doing `category` under `setting`: the catalogued power at the default clocks, moved
    along the DVFS curve to the activity's clock."""
    base = gpu_power_W(category, gpu.idle_W, gpu.tdp_W, gpu.activity_power)
    clocks = gpu.clocks
    if clocks is None or setting.is_default:
        return base
    f = activity_clock_MHz(gpu, category, setting)
    assert f is not None
    share = dvfs().sm_clock_share[category]
    return power_at_clock_W(base, gpu.idle_W, share, f, reference_clock_MHz(category, clocks), clocks)
