"""Validation cases: the published-cases YAML format, vTrain's ground-truth CSVs and MosaicML LLM
Foundry's MPT benchmark table."""

import csv
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

VTRAIN_VOCAB = 50257  # GPT-2 BPE, as in Megatron-DeepSpeed's GPT examples
MEGATRON_VOCAB_DIVISOR = 128  # Megatron pads the vocabulary to a multiple of 128 * tp


@dataclass(frozen=True)
class Case:
    id: str
    group: str
    scenario: dict[str, Any]
    published: dict[str, float]
    source: str = ""


def bundled_path(name: str) -> Path:
    return Path(str(resources.files("simulator.data").joinpath("validation", name)))


def load_published_cases(path: Path) -> list[Case]:
    raw = yaml.safe_load(path.read_text())
    return [
        Case(
            id=c["id"],
            group=_group_of(c["id"]),
            scenario=c["scenario"],
            published=c["published"],
            source=c.get("source", ""),
        )
        for c in raw
    ]


def _group_of(case_id: str) -> str:
    """'megatron2021_t1_1.7B' -> 'megatron2021_t1'; 'nemo2407_...' -> 'nemo2407'; 'seed_...' -> 'seed'."""
    parts = case_id.split("_")
    if parts[0].startswith("megatron") and len(parts) > 2:
        return "_".join(parts[:3]) if parts[1] == "t2" else "_".join(parts[:2])
    return parts[0]


def padded_vocab(vocab: int, tp: int) -> int:
    """Megatron-LM's --make-vocab-size-divisible-by 128, times tp."""
    unit = MEGATRON_VOCAB_DIVISOR * tp
    return math.ceil(vocab / unit) * unit


def vtrain_scenario(row: dict[str, str], idx: str) -> dict[str, Any]:
    """A vTrain measurement as a scenario: Megatron-DeepSpeed GPT on A100 SXM nodes of 8, 1F1B,
    full recompute, mixed precision; 800 Gbit/s of InfiniBand per node (vTrain's description).

    Intra-node bandwidth is the A100 SXM's own (the catalogue's 300 GB/s per direction through
    NVSwitch; NVIDIA A100 datasheet: 600 GB/s bidirectional NVLink), not the 150 GB/s of vTrain's
    configuration files: no A100 SXM node has a 150 GB/s per-direction NVLink, so that figure is
    read as a parameter of vTrain's own communication model (about the ring all-reduce *algorithm*
    bandwidth an 8-GPU NVSwitch node reaches), which this simulator derives itself from the link
    rate and the NCCL efficiency in specs/kernels.yaml."""
    tp = int(row["tensor parallelism"])
    gpus = int(row["# GPUs"])
    return {
        "name": f"vtrain_{idx}",
        "model": {
            "layers": int(row["# layers"]),
            "hidden": int(row["hidden size"]),
            "heads": int(row["attention heads"]),
            "vocab": padded_vocab(VTRAIN_VOCAB, tp),
            "seq_len": int(row["sequence length"]),
        },
        "cluster": {
            "gpu": "a100-sxm-80gb",
            "num_gpus": gpus,
            "gpus_per_node": min(8, gpus),
            "inter_node_Gbps": 100,
            "nics_per_node": 8,
        },
        "parallelism": {
            "tp": tp,
            "pp": int(row["pipeline parallelism"]),
            "dp": int(row["data parallelism"]),
            "schedule": "1f1b",
            "recompute": "full",
        },
        "training": {
            "global_batch": int(row["global batch"]),
            "micro_batch": int(row["micro batch"]),
            "precision": "fp16",
        },
    }


def load_vtrain_csv(path: Path, group: str) -> list[Case]:
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    return [
        Case(
            id=f"{group}_{i}",
            group=group,
            scenario=vtrain_scenario(row, f"{group}_{i}"),
            published={"iteration_time_s": float(row["iteration time (ms)"]) / 1000.0},
            source="vTrain ground truth (Bang et al. 2024)",
        )
        for i, row in enumerate(rows)
    ]


# LLM Foundry's benchmark README gives the A100 clusters as "1600 Gbps node-node interconnect
# (RoCE)": 8 NICs of 200 Gbit/s per 8-GPU node. It names no interconnect for its H100 runs.
LLMFOUNDRY_A100_NIC_GBPS = 200
LLMFOUNDRY_GPUS = {"h100_80gb": "h100-sxm-80gb", "a100_80gb": "a100-sxm-80gb", "a100_40gb": "a100-sxm-40gb"}


def llmfoundry_scenario(row: dict[str, str], idx: str) -> dict[str, Any]:
    """A row of MosaicML LLM Foundry's MPT benchmark table (scripts/train/benchmarking/README.md) as a
    scenario: Composer with PyTorch FSDP FULL_SHARD over every GPU (ZeRO-3, no tensor or pipeline
    parallelism), BF16, Triton FlashAttention, activation checkpointing of whole blocks where the
    table says so (full recompute), 8 GPUs per node.

    MPT is GPT-style: LayerNorm, GELU MLP of 4 x d_model, biases, learned positions, embeddings
    tied with the output layer, no dropout (the table's parameter counts match 12 l d^2 + 13 l d +
    2 d + V d + s d exactly). Not modelled: the fp32 gradient reduction of the table's DEFAULT
    mixed precision (PURE reduces in bf16), and anything the table does not state about the
    software (PyTorch, CUDA and FlashAttention versions of 2023)."""
    gpu = row["gpu"]
    cluster: dict[str, Any] = {"gpu": LLMFOUNDRY_GPUS[gpu], "num_gpus": int(row["gpus"]), "gpus_per_node": 8}
    if gpu.startswith("a100"):
        cluster |= {"inter_node_Gbps": LLMFOUNDRY_A100_NIC_GBPS, "nics_per_node": 8}
    hidden = int(row["hidden"])
    return {
        "name": f"llmfoundry_{idx}",
        "model": {
            "layers": int(row["layers"]),
            "hidden": hidden,
            "heads": int(row["heads"]),
            "ffn_hidden": 4 * hidden,
            "vocab": int(row["vocab"]),
            "seq_len": int(row["seq_len"]),
            "activation": "gelu",
            "norm": "layernorm",
            "bias": True,
            "position": "learned",
            "tied_embeddings": True,
            "dropout": False,
        },
        "cluster": cluster,
        "parallelism": {
            "tp": 1,
            "pp": 1,
            "zero": 3,
            "recompute": "full" if row["activation_checkpointing"] == "true" else "none",
        },
        "training": {
            "global_batch": int(row["global_batch"]),
            "micro_batch": int(row["micro_batch"]),
            "precision": "bf16",
            "flash_attention": True,
        },
    }


def load_llmfoundry_csv(path: Path) -> list[Case]:
    """One group per GPU type (llmfoundry_h100_80gb, ...); the step time is the table's tokens per
    global batch over its tokens per second."""
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    cases = []
    for i, row in enumerate(rows):
        group = f"llmfoundry_{row['gpu']}"
        tokens = int(row["global_batch"]) * int(row["seq_len"])
        cases.append(
            Case(
                id=f"{group}_{row['model']}_s{row['seq_len']}_{row['gpus']}gpu_{i}",
                group=group,
                scenario=llmfoundry_scenario(row, str(i)),
                published={"iteration_time_s": tokens / float(row["tokens_per_s"])},
                source="MosaicML LLM Foundry MPT benchmarks (scripts/train/benchmarking/README.md)",
            )
        )
    return cases


def load_cases(path: Path) -> list[Case]:
    """Any supported validation file: published-cases YAML, a vTrain CSV or the LLM Foundry table."""
    if path.suffix == ".csv":
        with path.open() as fh:
            header = fh.readline()
        if "tokens_per_s" in header:
            return load_llmfoundry_csv(path)
        group = "vtrain_multi" if "multi" in path.name else "vtrain_single"
        return load_vtrain_csv(path, group)
    return load_published_cases(path)


# The bundled published-case files: the shared copy, then the runs this project added.
PUBLISHED_FILES = ("published_cases.yaml", "added_cases.yaml")


def default_files() -> list[Path]:
    return [
        *(bundled_path(name) for name in PUBLISHED_FILES),
        bundled_path("vtrain/ground_truth_multi.csv"),
        bundled_path("vtrain/ground_truth_single.csv"),
        bundled_path("llmfoundry/mpt_benchmarks.csv"),
    ]
