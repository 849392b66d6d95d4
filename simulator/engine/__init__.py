"""Event engine (SimPy): GPUs, links and pipeline schedules run as processes; emits typed spans."""
