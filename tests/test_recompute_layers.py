"""Full recomputation of only the first N layers of each pipeline chunk (Megatron-LM's block method):
the work the engine runs, the FLOPs it counts, the memory it keeps and the step time it takes."""

import pytest

from simulator.engine.step import simulate_step
from simulator.enums import Phase
from simulator.memory.budget import memory_budget
from simulator.scenario import Setup, setup_from_mapping
from simulator.workload import build_step
from simulator.workload.flops import step_flops
from simulator.workload.ops import Op

LAYERS_PER_CHUNK = 6  # gpt3-1.3b: 24 layers on pp 2 x 2 virtual stages


def setup(recompute: str = "full", limit: int | None = None) -> Setup:
    parallelism = {"tp": 2, "pp": 2, "schedule": "interleaved", "virtual_stages": 2, "recompute": recompute}
    if limit is not None:
        parallelism["recompute_layers"] = limit
    return setup_from_mapping(
        {
            "name": "recompute-layers",
            "model": {"preset": "gpt3-1.3b"},
            "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 8},
            "parallelism": parallelism,
            "training": {"global_batch": 16, "micro_batch": 2},
        }
    )


def test_the_first_n_layers_of_each_chunk_recompute_last_in_the_backward() -> None:
    work = build_step(setup(limit=2))
    assert len(work.chunks) == 4
    for chunk in work.chunks:
        assert chunk.layers == LAYERS_PER_CHUNK and chunk.recomputed == 2
        # backward runs the chunk's last layer first: only its final two steps recompute
        assert [chunk.recomputes(i) for i in range(chunk.layers)] == [False] * 4 + [True] * 2
        recompute_ops = [i for i in chunk.backward(work.layers) if isinstance(i, Op) and i.phase is Phase.RECOMPUTE]
        assert len(recompute_ops) == 2 * sum(isinstance(i, Op) for i in work.layer.recompute)
    assert build_step(setup(limit=99)).chunks[0].recomputed == LAYERS_PER_CHUNK
    assert build_step(setup("none")).chunks[0].recomputed == 0


def test_hardware_flops_count_only_the_recomputed_layers() -> None:
    none, full = step_flops(build_step(setup("none"))), step_flops(build_step(setup()))
    extra_full = full.hardware - full.model
    assert none.hardware == pytest.approx(none.model)
    for n in range(1, LAYERS_PER_CHUNK + 1):
        flops = step_flops(build_step(setup(limit=n)))
        assert flops.model == pytest.approx(full.model)
        assert flops.hardware - flops.model == pytest.approx(extra_full * n / LAYERS_PER_CHUNK)


def test_fewer_recomputed_layers_trade_memory_for_time() -> None:
    times, activations = [], []
    for n in range(1, LAYERS_PER_CHUNK + 1):
        s = setup(limit=n)
        times.append(simulate_step(build_step(s)).result.time_s)
        activations.append(memory_budget(s).per_gpu_bytes["activations"])
    assert times == sorted(times) and times[0] < times[-1]
    assert activations == sorted(activations, reverse=True) and activations[0] > activations[-1]
    # every layer recomputed is plain full recompute; none keeps less than no recomputation at all
    full = setup()
    assert times[-1] == pytest.approx(simulate_step(build_step(full)).result.time_s)
    assert activations[-1] == pytest.approx(memory_budget(full).per_gpu_bytes["activations"])
    assert activations[0] < memory_budget(setup("none")).per_gpu_bytes["activations"]
