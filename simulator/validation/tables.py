"""The measured-run tables read as validation cases: vTrain's ground-truth CSVs (Bang et al. 2024) and
MosaicML LLM Foundry's MPT benchmark table. Each row becomes a scenario in the contract schema."""

import csv
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulator.validation.case import Case, file_error

VTRAIN_VOCAB = 50257  # GPT-2 BPE, as in Megatron-DeepSpeed's GPT examples
MEGATRON_VOCAB_DIVISOR = 128  # Megatron pads the vocabulary to a multiple of 128 * tp
VTRAIN_TIME_COLUMN = "iteration time (ms)"
VTRAIN_COLUMNS = (
    "# GPUs",
    "global batch",
    "micro batch",
    "hidden size",
    "attention heads",
    "# layers",
    "sequence length",
    "tensor parallelism",
    "data parallelism",
    "pipeline parallelism",
    VTRAIN_TIME_COLUMN,
)
LLMFOUNDRY_TEXT_COLUMNS = ("gpu", "model", "activation_checkpointing")
LLMFOUNDRY_COLUMNS = (
    "gpu",
    "model",
    "hidden",
    "heads",
    "layers",
    "vocab",
    "seq_len",
    "gpus",
    "micro_batch",
    "grad_accum",
    "global_batch",
    "activation_checkpointing",
    "tokens_per_s",
)


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


def vtrain_case(row: dict[str, str], i: int, group: str) -> Case:
    return Case(
        id=f"{group}_{i}",
        group=group,
        scenario=vtrain_scenario(row, f"{group}_{i}"),
        published={"iteration_time_s": float(row[VTRAIN_TIME_COLUMN]) / 1000.0},
        source="vTrain ground truth (Bang et al. 2024)",
    )


def load_vtrain_csv(path: Path, group: str) -> list[Case]:
    return _load_rows(path, VTRAIN_COLUMNS, lambda row, i: vtrain_case(row, i, group))


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
    if gpu not in LLMFOUNDRY_GPUS:
        raise ValueError(f"gpu: {gpu!r} is not one of {', '.join(LLMFOUNDRY_GPUS)}")
    if row["activation_checkpointing"] not in ("true", "false"):
        raise ValueError(f"activation_checkpointing: expected true or false, got {row['activation_checkpointing']!r}")
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
        # MPT's loss is PyTorch's cross_entropy on the logits under autocast: eager passes, on H100 too
        "framework": {"fused_cross_entropy": False},
    }


def llmfoundry_case(row: dict[str, str], i: int) -> Case:
    """One group per GPU type (llmfoundry_h100_80gb, ...); the step time is the table's tokens per
    global batch over its tokens per second."""
    group = f"llmfoundry_{row['gpu']}"
    tokens = int(row["global_batch"]) * int(row["seq_len"])
    return Case(
        id=f"{group}_{row['model']}_s{row['seq_len']}_{row['gpus']}gpu_{i}",
        group=group,
        scenario=llmfoundry_scenario(row, str(i)),
        published={"iteration_time_s": tokens / float(row["tokens_per_s"])},
        source="MosaicML LLM Foundry MPT benchmarks (scripts/train/benchmarking/README.md)",
    )


def load_llmfoundry_csv(path: Path) -> list[Case]:
    return _load_rows(path, LLMFOUNDRY_COLUMNS, llmfoundry_case, text_columns=LLMFOUNDRY_TEXT_COLUMNS)


def load_table(path: Path) -> list[Case]:
    """A CSV of measured runs, recognised by its header: vTrain's (group vtrain_multi when the file
    name says multi, else vtrain_single) or LLM Foundry's."""
    header = _header(path)
    if VTRAIN_TIME_COLUMN in header:
        return load_vtrain_csv(path, "vtrain_multi" if "multi" in path.name else "vtrain_single")
    if "tokens_per_s" in header:
        return load_llmfoundry_csv(path)
    raise file_error(
        path,
        [
            f"not a known table of measured runs: the header has neither {VTRAIN_TIME_COLUMN!r} (vTrain) "
            "nor 'tokens_per_s' (LLM Foundry)"
        ],
    )


def _header(path: Path) -> list[str]:
    with path.open(newline="") as fh:
        return next(csv.reader(fh), [])


def _load_rows(
    path: Path,
    columns: tuple[str, ...],
    make: Callable[[dict[str, str], int], Case],
    text_columns: tuple[str, ...] = (),
) -> list[Case]:
    """Every row through `make`; a missing column or a value that is not a number (every column but
    `text_columns` is numeric) is one problem line naming the file's line and column, and all of
    them are reported together."""
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise file_error(path, [f"missing column {c!r}" for c in missing])
        rows = list(reader)
    cases, problems = [], []
    for i, row in enumerate(rows):
        try:
            cases.append(make(row, i))
        except (ValueError, TypeError, ZeroDivisionError) as exc:
            numeric = [c for c in columns if c not in text_columns]
            problems.append(f"line {i + 2}: {_bad_value(row, numeric) or exc}")
    if problems:
        raise file_error(path, problems)
    return cases


def _bad_value(row: dict[str, str], numeric: list[str]) -> str | None:
    """The first of the `numeric` columns of `row` that does not hold a positive number, as a message."""
    for c in numeric:
        value = row.get(c)
        try:
            if float(value or "") > 0:
                continue
        except ValueError:
            pass
        return f"{c}: expected a positive number, got {value!r}"
    return None
