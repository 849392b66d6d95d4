"""One validation case, where the bundled validation data lives, and the error a broken file raises."""

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from simulator.scenario.errors import ConfigError

# Published figure -> where the prediction lives in the result JSON: what `validate` compares.
METRICS = {
    "iteration_time_s": ("step", "time_s"),
    "days": ("run", "days"),
    "energy_mwh": ("run", "energy_mwh"),
    # metered power (the result's `power` block, W): one GPU's board power averaged over the step, one
    # node's IT draw (GPUs and node overhead, before PUE) averaged and at its peak
    "gpu_W_mean": ("power", "gpu_W_mean"),
    "node_W_mean": ("power", "node_W_mean"),
    "node_W_peak": ("power", "node_W_peak"),
}
# Published figures kept beside the compared one for reference: the throughput (or MFU) a paper gives,
# from which its `iteration_time_s` was derived (data/validation/README.md), or an MLPerf submission's
# time to train (which includes evaluation and start-up the step time does not). Not compared.
REFERENCE_FIGURES = (
    "tokens_per_s_per_gpu",
    "model_tflops_per_gpu",
    "tflops_per_gpu_hw",
    "tflops_per_gpu_model",
    "mfu",
    "mlperf_ttt_min",
)


@dataclass(frozen=True)
class Case:
    id: str
    group: str
    scenario: dict[str, Any]
    published: dict[str, float]
    source: str = ""
    # Declared ranking study (a case's optional `study` key): the cases of one study differ only in the
    # parallel plan and are ranked against each other (validation/ranking.py); "" = derived from the case.
    study: str = ""


def bundled_path(name: str) -> Path:
    return Path(str(resources.files("simulator.data").joinpath("validation", name)))


def file_error(path: Path, problems: list[str]) -> ConfigError:
    """A validation file that cannot be read: one line per problem, each naming the file (and the
    case, row or column), reported by the CLI with exit code 2."""
    return ConfigError([f"{path}: {p}" for p in problems])
