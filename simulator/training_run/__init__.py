"""The whole training run: steps, days, GPU-hours, energy, cost and CO2."""
