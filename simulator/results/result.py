"""The result of simulating a scenario, and its contract JSON form (docs/contract.md section 3)."""

from dataclasses import dataclass, field
from typing import Any

from simulator.enums import Category
from simulator.memory.budget import MemoryResult
from simulator.training_run.totals import RunResult


@dataclass(frozen=True)
class StepResult:
    """One optimizer step: its time, throughput, FLOPs utilisation, breakdown and energy."""

    time_s: float
    tokens_per_s: float
    model_flops: float
    hardware_flops: float
    mfu: float
    hfu: float
    breakdown_s: dict[Category, float]
    energy_J_per_gpu: float  # facility energy of one step per GPU (PUE and node share included)
    method: str  # "analytical" or "event"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "time_s": self.time_s,
            "tokens_per_s": self.tokens_per_s,
            "model_flops": self.model_flops,
            "hardware_flops": self.hardware_flops,
            "mfu": self.mfu,
            "hfu": self.hfu,
            "breakdown_s": {c.value: v for c, v in self.breakdown_s.items()},
            "energy_J_per_gpu": self.energy_J_per_gpu,
            "method": self.method,
        }
        d.update(self.extra)
        return d


@dataclass(frozen=True)
class SimulationResult:
    """Everything one simulation reports: step, memory, whole run, model and plan (and the spans)."""

    name: str
    step: StepResult
    memory: MemoryResult
    run: RunResult | None
    model: dict[str, Any]
    plan: dict[str, Any]
    spans: list = field(default_factory=list, repr=False, compare=False)  # engine spans, for the trace
    power: dict[str, float] = field(default_factory=dict)  # the contract's power block (energy/timeline.py)
    timeline: Any = field(default=None, repr=False, compare=False)  # energy.timeline.PowerTimeline or None

    @property
    def feasible(self) -> bool:
        """Fits in memory and, with the reliability model on, the run can progress at all."""
        return self.memory.fits and (self.run is None or self.run.progresses)

    @property
    def reason(self) -> str | None:
        """Why the plan is not feasible; None when it is."""
        if not self.memory.fits:
            return self.memory.reason
        return self.run.failure_note if self.run is not None and not self.run.progresses else None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "feasible": self.feasible,
            "reason": self.reason,
            "step": self.step.to_dict(),
            "memory": self.memory.as_json(),
        }
        if self.power:
            d["power"] = self.power
        if self.run is not None:
            d["run"] = self.run.to_dict()
        d["model"] = self.model
        d["plan"] = self.plan
        return d
