"""Unit conversions: every non-SI number read from a file passes through here.

Decimal prefixes throughout (1 GB = 1e9 bytes, 1 TFLOP/s = 1e12 FLOP/s), as vendors quote
them; never binary ones (GiB), whose mix with decimal ones is a classic ~7-10 % bug.
"""

GIGA = 1e9
TERA = 1e12

SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86400.0
BITS_PER_BYTE = 8.0


def tflops_to_flops_per_s(tflops: float) -> float:
    """TFLOP/s -> FLOP/s."""
    return tflops * TERA


def gb_to_bytes(gb: float) -> float:
    """GB (decimal) -> bytes."""
    return gb * GIGA


def gbps_bytes_to_bytes_per_s(gb_per_s: float) -> float:
    """GB/s (decimal bytes) -> bytes/s."""
    return gb_per_s * GIGA


def gbit_to_bytes_per_s(gbit_per_s: float) -> float:
    """Gbit/s line rate -> bytes/s."""
    return gbit_per_s * GIGA / BITS_PER_BYTE


def us_to_s(us: float) -> float:
    """Microseconds -> seconds."""
    return us * 1e-6


def s_to_us(seconds: float) -> float:
    """Seconds -> microseconds (Chrome trace timestamps)."""
    return seconds * 1e6


def joules_to_mwh(joules: float) -> float:
    """J -> MWh."""
    return joules / 3.6e9


def mwh_to_joules(mwh: float) -> float:
    """MWh -> J."""
    return mwh * 3.6e9


def joules_to_kwh(joules: float) -> float:
    """J -> kWh."""
    return joules / 3.6e6
