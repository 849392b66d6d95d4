"""The ranges input numbers and names must lie in, each bound with its reason, and the pydantic types
that enforce them for the scenario schema and the catalogue entries.

Every number a user can write gets a range that makes physical sense, wide enough for what-if
hardware (10-100x today's) and narrow enough that nothing downstream overflows to inf/NaN or runs
for hours: a typo such as `1e308` is an input error naming its key, not a crash or a hang.

Whole numbers may be written as integral floats or numeric strings ("300e9", 8e0, 8.0); 8.5 and
booleans are rejected (YAML reads `true` as a bool, which Python would otherwise count as 1).
"""

import math
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

# --- counts -----------------------------------------------------------------------------------------
MAX_GPUS = 2**21  # 2,097,152: ~10x the largest clusters built (2025: ~200k GPUs)
MAX_GPUS_PER_NODE = 1024  # rack-scale NVLink domains: 72 today, 576 announced
MAX_NICS_PER_NODE = 64  # DGX-class nodes have 8-10
MAX_LAYERS = 4096  # deepest trained transformers ~1,000 layers (DeepNet); LLMs <= ~200
MAX_HIDDEN = 2**20  # 1,048,576: ~40x the widest LLMs (hidden 18-30k)
MAX_FFN_HIDDEN = 2**23  # 8x MAX_HIDDEN
MAX_HEADS = 2**16  # LLMs use <= 128 query heads
MAX_VOCAB = 2**24  # 16.8M: ~64x the largest vocabularies (~256k)
MAX_EXPERTS = 2**16  # routed experts per MoE layer: published models use 8-384
MAX_CAPACITY_FACTOR = 64.0  # token-dropping MoE runs use 1.0-2.0; beyond the expert count it only pads
MAX_SEQ_LEN = 2**24  # 16.8M tokens: ~10x the longest contexts trained
MAX_GLOBAL_BATCH = 2**26  # sequences per step: 32 per GPU on MAX_GPUS (LLMs use 1-16M tokens per step)
MAX_MICRO_BATCH = 2**16  # sequences per micro-batch: LLM training uses 1-64
MAX_TOKENS = 1e16  # ~300x the largest training runs (~3.6e13 tokens)
MAX_SEED = 2**63 - 1  # numpy's generators take any non-negative integer; this fits a signed 64-bit field

# --- rates, sizes, times ----------------------------------------------------------------------------
MIN_TFLOPS, MAX_TFLOPS = 1e-3, 1e5  # 1 GFLOP/s (a CPU core) .. ~20x a B200's dense FP8 peak
MIN_GB, MAX_GB = 1e-3, 1e5  # GPU memory: 1 MB .. 100 TB (GPUs have 16-288 GB)
MIN_GBPS, MAX_GBPS = 1e-2, 1e5  # bytes/s links, HBM, storage: 10 MB/s (one old disk) .. 100 TB/s (~12x B200 HBM)
MIN_GBIT, MAX_GBIT = 0.1, 1e5  # NIC line rate: 100 Mb/s .. 100 Tb/s (~60x today's 1.6T NICs)
MAX_WATTS = 1e5  # 100 kW per GPU or node overhead (GPUs draw 0.3-1.2 kW, whole wafer-scale systems ~25 kW)
MAX_SM_COUNT = 10**6  # GPUs have ~100-300 SMs
MIN_CLOCK_MHZ, MAX_CLOCK_MHZ = 1.0, 1e5  # SM clocks: GPUs run 100-3,000 MHz
MIN_EFFICIENCY = 0.01  # fraction of a peak a kernel reaches: measured ones reach 0.3-0.95
MIN_TENSOR_FLOPS_PER_EXP, MAX_TENSOR_FLOPS_PER_EXP = 1.0, 1e6  # today's GPUs: 64-512 tensor FLOPs per exponential
MAX_LAUNCH_US = 1e4  # 10 ms per kernel launch or per framework op: CUDA launches take ~5 us, eager ops ~10-100 us
MAX_OVERSUBSCRIPTION = 64.0  # leaf downlink:uplink ratio; clusters for training use 1-4
MIN_PUE, MAX_PUE = 1.0, 3.0  # a facility cannot use less than its IT load; the worst data centres report ~2.5
MAX_GRID_KG_PER_KWH = 2.0  # coal-fired grids emit ~1.0-1.2 kg CO2e per kWh
MAX_USD_PER_GPU_HOUR = 1e3  # list prices are $1-10 per GPU-hour
MAX_USD_PER_KWH = 10.0  # electricity sells at $0.03-0.50 per kWh
MAX_FAILURES_PER_HOUR = 1.0  # per GPU or per node; measured rates are ~1e-5 (Llama 3: 419 in 54 days on 16k GPUs)
MIN_CHECKPOINT_INTERVAL_S, MAX_CHECKPOINT_INTERVAL_S = 1.0, 1e8  # one second .. ~3 years (longer than any run)
MAX_RESTART_S = 1e6  # ~12 days; restarts take minutes to an hour

MAX_TEXT = 256  # characters in a name, a preset or GPU name, a file path


def _whole_number(value: Any) -> Any:
    """An integral float or a numeric string ("300e9", "8e0") as an int; booleans rejected. Other
    types pass through for pydantic to reject with its own message."""
    if isinstance(value, bool):
        raise PydanticCustomError("whole_number", "expected a whole number, not a boolean")
    if isinstance(value, str):
        value = _parse_number(value, whole=True)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise PydanticCustomError("whole_number", "expected a whole number")
        return int(value)
    return value


def _real_number(value: Any) -> Any:
    """A number or a numeric string as a float; booleans rejected."""
    if isinstance(value, bool):
        raise PydanticCustomError("real_number", "expected a number, not a boolean")
    if isinstance(value, str):
        return _parse_number(value, whole=False)
    return value


def _parse_number(text: str, whole: bool) -> int | float | str:
    """'300e9' -> 300000000000 (whole) or 3e11; text that is no number is returned for pydantic to reject."""
    s = text.strip()
    if len(s) > MAX_TEXT:  # Python refuses to convert very long digit strings (int_max_str_digits)
        return text
    if whole:
        try:
            return int(s)
        except ValueError:
            pass
    try:
        return float(s)
    except ValueError:
        return text


def _printable(text: str) -> str:
    """Free text is echoed in reports and messages: no control characters (terminal escapes, line
    breaks, bidirectional overrides that reorder what a terminal shows)."""
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI_CONTROLS:
            raise PydanticCustomError(
                "control_character", "must not contain control characters such as {char}", {"char": ascii(ch)}
            )
    return text


_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

Whole = BeforeValidator(_whole_number)
Real = BeforeValidator(_real_number)
Text = Annotated[str, AfterValidator(_printable), Field(min_length=1, max_length=MAX_TEXT)]
WholeNumber = Annotated[int, Whole]  # an int that also takes "300e9", 8e0 and 8.0 but not 8.5 or true
RealNumber = Annotated[float, Real, Field(allow_inf_nan=False)]  # a finite float that rejects booleans


def within(low: float, high: float, low_open: bool = False) -> Any:
    """The range of a WholeNumber or RealNumber field: [low, high], or (low, high] with `low_open`.
    Use as `Annotated[RealNumber, within(0.0, MAX_WATTS)]`."""
    if low_open:
        return Field(gt=low, le=high)
    return Field(ge=low, le=high)
