"""CUDA graphs (framework.cuda_graphs): the host replays a captured layer once instead of launching
each op, a dropless MoE layer's routing and experts stay eager, and a full-iteration graph refuses MoE
models. Host times are checked exactly against the segment model (program/segments.py)."""

import pytest

from simulator.catalog.loader import bundled
from simulator.collectives.groups import Layout
from simulator.collectives.pricing import CommPricer
from simulator.enums import Category, CudaGraphs, OpKind, Phase, Role
from simulator.program.compile import compile_program
from simulator.program.segments import host_time_s
from simulator.scenario import Setup, setup_from_mapping
from simulator.scenario.errors import ConfigError
from simulator.simulate import simulate
from simulator.topology import build_topology
from simulator.workload import build_step
from simulator.workload.ops import Op

DISPATCH_S = 80e-6
REPLAY_S = 20e-6


def op(name: str, role: Role | None = None) -> Op:
    return Op(name=name, kind=OpKind.ELEMENTWISE, phase=Phase.FORWARD, bytes=1.0, role=role)


def test_host_time_eager_graphed_and_expert_path() -> None:
    attention = [op("norm"), op("qkv", Role.QKV), op("attn"), op("proj", Role.ATTN_PROJ)]
    assert host_time_s(attention, DISPATCH_S, False, REPLAY_S) == pytest.approx(4 * DISPATCH_S)
    assert host_time_s(attention, DISPATCH_S, True, REPLAY_S) == pytest.approx(REPLAY_S)
    # attention captured, the router and permutation eager: one replay + 2 launches
    routed = [*attention, op("router", Role.ROUTER), op("permute", Role.TOKEN_PERMUTE)]
    assert host_time_s(routed, DISPATCH_S, True, REPLAY_S) == pytest.approx(REPLAY_S + 2 * DISPATCH_S)
    # everything from the first to the last expert GEMM is eager, the activation between them too
    experts = [op("up", Role.EXPERT_UP), op("act"), op("down", Role.EXPERT_DOWN)]
    assert host_time_s(experts, DISPATCH_S, True, REPLAY_S) == pytest.approx(3 * DISPATCH_S)
    whole = [*routed, *experts, op("unpermute", Role.TOKEN_PERMUTE), op("residual")]
    assert host_time_s(whole, DISPATCH_S, True, REPLAY_S) == pytest.approx(REPLAY_S + 6 * DISPATCH_S)


def small(graphs: str, **extra: object) -> Setup:
    """GPT-3 125M with 512-token micro-batches on one A100: host-bound when eager."""
    return setup_from_mapping(
        {
            "name": "graphs",
            "model": {"preset": "gpt3-125m", "seq_len": 512},
            "cluster": {"gpu": "a100-sxm-80gb", "num_gpus": 1},
            "parallelism": {"tp": 1, "pp": 1},
            "training": {"global_batch": 4, "micro_batch": 1},
            "framework": {"cuda_graphs": graphs, **extra},
        }
    )


def layer_segments(s: Setup):
    pricer = CommPricer(build_topology(s.cluster), Layout.of(s.plan), s.cluster.collective_algorithm)
    program = compile_program(build_step(s), pricer)
    chunk = program.stages[0].chunks[0]
    forward = chunk.forward[0].segment
    return {part.name: part for part, _ in forward.parts}


@pytest.mark.parametrize("graphs", ["none", "layers", "full_iteration"])
def test_segment_host_time(graphs: str) -> None:
    s = small(graphs)
    assert s.cuda_graphs is CudaGraphs(graphs)
    replay_s = bundled("software")["cuda_graph_replay_us"] * 1e-6
    for name, seg in layer_segments(s).items():
        gpu_s = sum(t.duration_s for t in seg.items)
        layer = name == "layer_forward"
        if graphs == "none" or (graphs == "layers" and not layer):
            host_s = len(seg.items) * s.host_time_per_op_s
        else:
            host_s = replay_s if graphs == "layers" else 0.0
        assert seg.duration_s == pytest.approx(max(gpu_s, host_s), rel=1e-12), name
        assert seg.host_gap_s == pytest.approx(max(0.0, host_s - gpu_s), abs=1e-15), name


def test_graphs_remove_host_overhead_of_a_host_bound_step() -> None:
    eager, layers, full = (simulate(small(g)).step for g in ("none", "layers", "full_iteration"))
    host = Category.HOST_OVERHEAD
    assert eager.breakdown_s[host] > 0.5 * eager.time_s  # the toy is host-bound eager
    # per-layer graphs leave only the embedding's and head's eager launches exposed; one graph none
    assert 0.0 < layers.breakdown_s[host] < 0.05 * layers.time_s
    assert full.breakdown_s.get(host, 0.0) == 0.0
    assert full.time_s < layers.time_s < 0.3 * eager.time_s
    # the GPU's own work does not change
    for step in (layers, full):
        assert step.breakdown_s[Category.GEMM] == pytest.approx(eager.breakdown_s[Category.GEMM], rel=1e-12)


def test_stack_default_and_explicit_key() -> None:
    assert small("none", stack="megatron-core").cuda_graphs is CudaGraphs.NONE
    assert small("layers", stack="megatron-core").cuda_graphs is CudaGraphs.LAYERS


def test_padded_moe_layers_are_captured_whole() -> None:
    """Padded to capacity (static shapes) the graph takes the routing and experts too."""
    experts = [op("router", Role.ROUTER), op("up", Role.EXPERT_UP), op("act"), op("down", Role.EXPERT_DOWN)]
    assert host_time_s(experts, DISPATCH_S, True, REPLAY_S, moe_eager=False) == pytest.approx(REPLAY_S)
    assert host_time_s(experts, DISPATCH_S, True, REPLAY_S, moe_eager=True) == pytest.approx(4 * DISPATCH_S)


def moe(graphs: str, capacity_factor: float | None) -> Setup:
    return setup_from_mapping(
        {
            "name": "moe-graphs",
            "model": {"preset": "mixtral-8x7b", "moe": {"capacity_factor": capacity_factor}},
            "cluster": {"gpu": "h100-sxm-80gb", "num_gpus": 8},
            "parallelism": {"tp": 1, "pp": 1, "ep": 8},
            "training": {"global_batch": 8, "micro_batch": 1},
            "framework": {"cuda_graphs": graphs},
        }
    )


def test_full_iteration_refuses_dropless_moe_only() -> None:
    with pytest.raises(ConfigError) as err:
        moe("full_iteration", None)
    assert any(p.startswith("framework.cuda_graphs: full_iteration") for p in err.value.problems)
    assert moe("full_iteration", 1.0).cuda_graphs is CudaGraphs.FULL_ITERATION
