"""Event-time tests of the flow-level network model (max-min fair link sharing), plus a throughput report."""

import time

import numpy as np
import pytest
import simpy

from simulator.network import FlowNetwork, FlowRecord, max_min_rates

GBPS = 1e9  # bytes/s


def _start_at(env: simpy.Environment, net: FlowNetwork, at_s: float, **flow) -> simpy.Process:
    """A process that starts one flow at `at_s` and returns its FlowRecord."""

    def run():
        yield env.timeout(at_s)
        return (yield net.transfer(**flow))

    return env.process(run())


def test_single_flow_bandwidth_then_latency():
    env = simpy.Environment()
    net = FlowNetwork(env, [1 * GBPS])
    done = net.transfer({0: 1}, 1e9, latency_s=1e-6, tag="a")
    env.run()
    record = done.value
    assert isinstance(record, FlowRecord)
    assert record.transfer_end_s == 1.0
    assert record.end_s == 1.000001
    assert net.records == [record]
    assert net.active == 0


def test_two_flows_from_zero_share_equally():
    env = simpy.Environment()
    net = FlowNetwork(env, [1 * GBPS])
    first, second = net.transfer({0: 1}, 1e9, tag="a"), net.transfer({0: 1}, 1e9, tag="b")
    assert net.rates_Bps() == [("a", 0.5e9), ("b", 0.5e9)]
    env.run()
    assert first.value.end_s == 2.0
    assert second.value.end_s == 2.0


def test_late_second_flow():
    # a alone for 0.5 s (0.5e9 B left), then both at 0.5e9 B/s: a ends at 1.5 with b at 0.5e9 B left,
    # which it then moves alone at 1e9 B/s: b ends at 2.0.
    env = simpy.Environment()
    net = FlowNetwork(env, [1 * GBPS])
    first = _start_at(env, net, 0.0, links={0: 1}, bytes_per_flow=1e9, tag="a")
    second = _start_at(env, net, 0.5, links={0: 1}, bytes_per_flow=1e9, tag="b")
    env.run()
    assert first.value.end_s == 1.5
    assert second.value.end_s == 2.0
    assert [record.tag for record in net.records] == ["a", "b"]


def test_flows_ending_together_complete_together():
    env = simpy.Environment()
    net = FlowNetwork(env, [1 * GBPS, 2 * GBPS])
    net.transfer({0: 1}, 1e9, tag="a")
    net.transfer({1: 1}, 2e9, tag="b")
    env.run()
    assert [(record.tag, record.end_s) for record in net.records] == [("a", 1.0), ("b", 1.0)]


def test_back_to_back_flows_and_active_count():
    env = simpy.Environment()
    net = FlowNetwork(env, [1 * GBPS])
    seen = []

    def chain():
        for _ in range(3):
            event = net.transfer({0: 1}, 1e9)
            seen.append(net.active)
            yield event

    env.process(chain())
    env.run()
    assert [record.end_s for record in net.records] == [1.0, 2.0, 3.0]
    assert seen == [1, 1, 1]
    assert net.active == 0


def test_multiplicity_counts_each_constituent():
    env = simpy.Environment()
    net = FlowNetwork(env, [4 * GBPS])
    done = net.transfer({0: 4}, 1e9)
    env.run()
    assert done.value.end_s == 1.0
    assert net.bytes_moved[0] == pytest.approx(4e9, rel=1e-12)


def test_max_min_symmetric_line():
    env = simpy.Environment()
    net = FlowNetwork(env, [1.0, 1.0])
    for tag, links in (("A", {0: 1, 1: 1}), ("B", {0: 1}), ("C", {1: 1})):
        net.transfer(links, 1.0, tag=tag)
    assert net.rates_Bps() == [("A", 0.5), ("B", 0.5), ("C", 0.5)]
    env.run()
    assert [record.end_s for record in net.records] == [2.0, 2.0, 2.0]


def test_max_min_bottleneck_freezing():
    # Link 0 (capacity 1) saturates first at level 0.5 and freezes A and B; C then fills link 1 up to 2 - 0.5.
    env = simpy.Environment()
    net = FlowNetwork(env, [1.0, 2.0])
    for tag, links in (("A", {0: 1, 1: 1}), ("B", {0: 1}), ("C", {1: 1})):
        net.transfer(links, 1.0, tag=tag)
    assert net.rates_Bps() == [("A", 0.5), ("B", 0.5), ("C", 1.5)]
    env.run()
    # C ends at 1/1.5 s; A and B keep 0.5 each (link 0 is still their bottleneck) and end at 2.0 s.
    ends = {record.tag: record.end_s for record in net.records}
    assert ends["C"] == pytest.approx(2.0 / 3.0, rel=1e-15)
    assert ends["A"] == pytest.approx(2.0, rel=1e-15)
    assert ends["B"] == pytest.approx(2.0, rel=1e-15)
    assert [record.tag for record in net.records] == ["C", "A", "B"]


def test_weighted_max_min_function():
    # Flow 0 crosses link 0 twice; flow 1 once: 2 r + r = 3 -> r = 1 each; flow 2 alone on link 1 gets 5.
    rates, load = max_min_rates(
        np.array([0, 0, 1]), np.array([2.0, 1.0, 1.0]), np.array([1, 1, 1]), np.array([3.0, 5.0])
    )
    assert rates.tolist() == [1.0, 1.0, 5.0]
    assert load.tolist() == [3.0, 5.0]


def _progressive_filling(links: list[dict[int, float]], capacity: np.ndarray) -> np.ndarray:
    """Textbook sequential water-filling (one saturation level per round), the oracle for max_min_rates."""
    rate = np.zeros(len(links))
    unfrozen = set(range(len(links)))
    while unfrozen:
        load = np.zeros(capacity.size)
        weight = np.zeros(capacity.size)
        for flow, flow_links in enumerate(links):
            for link, mult in flow_links.items():
                if flow in unfrozen:
                    weight[link] += mult
                else:
                    load[link] += mult * rate[flow]
        crossed = weight > 0
        level = min((capacity[crossed] - load[crossed]) / weight[crossed])
        saturated = {
            int(link)
            for link in np.flatnonzero(crossed)
            if load[link] + level * weight[link] >= capacity[link] * (1 - 1e-12)
        }
        for flow in sorted(unfrozen):
            if saturated & links[flow].keys():
                rate[flow] = level
                unfrozen.discard(flow)
    return rate


@pytest.mark.parametrize("seed", range(20))
def test_max_min_matches_progressive_filling(seed: int):
    rng = np.random.default_rng(seed)
    n_links = int(rng.integers(1, 12))
    capacity = rng.choice([1.0, 2.0, 3.0, 10.0], n_links) if seed % 2 else rng.uniform(1.0, 10.0, n_links)
    links = []
    for _ in range(int(rng.integers(1, 25))):
        ids = rng.choice(n_links, size=int(rng.integers(1, n_links + 1)), replace=False)
        links.append({int(link): float(rng.integers(1, 4)) for link in ids})
    rates, load = max_min_rates(
        np.array([link for flow in links for link in flow]),
        np.array([mult for flow in links for mult in flow.values()]),
        np.array([len(flow) for flow in links]),
        capacity,
    )
    expected = _progressive_filling(links, capacity)
    assert rates == pytest.approx(expected, rel=1e-9)
    assert np.all(load <= capacity * (1 + 1e-12))
    # Max-min optimality: every flow crosses a saturated link on which no other flow has a higher rate.
    for flow, flow_links in enumerate(links):
        assert any(
            load[link] >= capacity[link] * (1 - 1e-9)
            and all(rates[other] <= rates[flow] * (1 + 1e-9) for other, ol in enumerate(links) if link in ol)
            for link in flow_links
        )


def test_conservation_on_shared_links():
    env = simpy.Environment()
    net = FlowNetwork(env, [1.0, 2.0, 3.0])
    _start_at(env, net, 0.0, links={0: 2, 1: 1}, bytes_per_flow=3.0)
    _start_at(env, net, 0.25, links={1: 3, 2: 1}, bytes_per_flow=5.0)
    _start_at(env, net, 1.0, links={0: 1, 2: 2}, bytes_per_flow=7.0)
    env.run()
    assert net.bytes_moved == pytest.approx([2 * 3 + 7, 3 + 3 * 5, 5 + 2 * 7], rel=1e-12)


def test_zero_bytes_and_empty_links_cost_latency_only():
    env = simpy.Environment()
    net = FlowNetwork(env, [1.0])
    zero = _start_at(env, net, 1.0, links={0: 1}, bytes_per_flow=0.0, latency_s=0.25)
    empty = _start_at(env, net, 1.0, links={}, bytes_per_flow=1e9, latency_s=0.5)
    env.run()
    assert zero.value.end_s == 1.25
    assert empty.value.end_s == 1.5
    assert net.bytes_moved.tolist() == [0.0]


def test_invalid_input_raises():
    env = simpy.Environment()
    with pytest.raises(ValueError):
        FlowNetwork(env, [1.0, 0.0])
    net = FlowNetwork(env, [1.0])
    with pytest.raises(ValueError):
        net.transfer({1: 1}, 1.0)
    with pytest.raises(ValueError):
        net.transfer({0: -1}, 1.0)
    with pytest.raises(ValueError):
        net.transfer({0: 1}, -1.0)


def _random_workload(
    n_flows: int, n_links: int, concurrency: int, links_per_flow: int, seed: int, uniform: bool = False
) -> tuple[FlowNetwork, list[tuple[dict[int, float], float]]]:
    """`concurrency` processes, each starting flows back to back after a random gap, until `n_flows` ran.

    Random capacities make nearly every flow's fair rate distinct (the slow case for water-filling); `uniform`
    gives every link 50 GB/s, as in a fabric of identical links.
    """
    rng = np.random.default_rng(seed)
    env = simpy.Environment()
    net = FlowNetwork(env, np.full(n_links, 5e10) if uniform else rng.uniform(1e9, 1e11, n_links))
    specs = []
    for _ in range(n_flows):
        ids = rng.choice(n_links, size=int(rng.integers(1, links_per_flow + 1)), replace=False)
        links = {int(link): float(rng.integers(1, 9)) for link in ids}
        specs.append((links, float(rng.uniform(1e6, 1e9))))
    gaps = rng.exponential(1e-3, n_flows)
    latencies = rng.uniform(0.0, 1e-5, n_flows)

    def worker(first: int):
        for index in range(first, n_flows, concurrency):
            yield env.timeout(gaps[index])
            links, size = specs[index]
            yield net.transfer(links, size, latency_s=latencies[index], tag=index)

    for first in range(concurrency):
        env.process(worker(first))
    env.run()
    return net, specs


def test_many_random_flows_complete_and_conserve_bytes():
    net, specs = _random_workload(n_flows=2000, n_links=50, concurrency=40, links_per_flow=6, seed=7)
    assert len(net.records) == 2000
    assert sorted(record.tag for record in net.records) == list(range(2000))
    assert all(record.end_s >= record.start_s for record in net.records)
    expected = np.zeros(50)
    for links, size in specs:
        for link, mult in links.items():
            expected[link] += mult * size
    assert net.bytes_moved == pytest.approx(expected, rel=1e-9)
    assert net.active == 0


def test_deterministic():
    first, _ = _random_workload(n_flows=300, n_links=20, concurrency=10, links_per_flow=4, seed=3)
    second, _ = _random_workload(n_flows=300, n_links=20, concurrency=10, links_per_flow=4, seed=3)
    assert first.records == second.records
    assert first.bytes_moved.tolist() == second.bytes_moved.tolist()


@pytest.mark.parametrize(
    ("concurrency", "links_per_flow", "uniform"),
    [(10, 4, False), (10, 64, True), (100, 4, False), (100, 64, False), (100, 64, True)],
)
def test_throughput_report(concurrency: int, links_per_flow: int, uniform: bool):
    """Prints flows/s sustained (run `pytest -s -k throughput`); no timing assertion."""
    n_flows = 1000
    start = time.perf_counter()
    net, _ = _random_workload(n_flows, 512, concurrency, links_per_flow, seed=1, uniform=uniform)
    wall_s = time.perf_counter() - start
    assert len(net.records) == n_flows
    capacities = "uniform" if uniform else "random"
    print(
        f"\n{concurrency} concurrent, 1-{links_per_flow} links/flow, {capacities} capacities: "
        f"{n_flows / wall_s:,.0f} flows/s"
    )
