"""One result object -> the contract JSON, a human report, and files on disk."""

from simulator.results.result import SimulationResult, StepResult

__all__ = ["SimulationResult", "StepResult"]
