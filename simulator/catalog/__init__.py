"""Hardware and model catalogues: YAML data under simulator/specs loaded into frozen dataclasses."""

from simulator.catalog.hardware import GpuSpec, NicSpec, NodeSpec, gpu_catalogue, node_catalogue
from simulator.catalog.models import ModelSpec, model_catalogue

__all__ = [
    "GpuSpec",
    "NicSpec",
    "NodeSpec",
    "ModelSpec",
    "gpu_catalogue",
    "node_catalogue",
    "model_catalogue",
]
