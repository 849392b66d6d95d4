"""What GPU time and energy cost: the bill and the emissions (prices and grid intensity from
specs/economics.yaml unless the scenario sets them)."""

from simulator.scenario.setup import Economics


def cost_usd(economics: Economics, gpu_hours: float, kwh: float) -> float:
    """What a run is billed: GPU-hours at the hourly price plus the facility energy at the energy
    price (0 when the hourly price already includes power)."""
    return gpu_hours * economics.usd_per_gpu_hour + kwh * economics.usd_per_kWh


def co2_tonnes(economics: Economics, kwh: float) -> float:
    """Emissions of the facility energy at the grid's carbon intensity (Patterson et al. 2021)."""
    return kwh * economics.grid_kg_co2_per_kWh / 1000.0
