"""How unevenly routed tokens load the expert-parallel ranks.

Balanced routing (the default, as published benchmarks force it) loads every expert with
tokens x top_k / experts rows. With `model.moe.load_skew` s > 0 each micro-batch routes its token
assignments to experts with Zipf(s) popularity (expert popularity proportional to 1 / rank^s, the
long-tailed expert loads reported for unbalanced MoE training, e.g. Lepikhin et al. 2020 "GShard"
sec. 2.2, and the motivation of DeepSeek-V3's auxiliary-loss-free balancing) over a random order of
the experts, the assignments drawn as a multinomial; the experts sit on the EP ranks in contiguous
blocks (Megatron-Core). Every rank of a layer waits for the busiest one at the combine, so a layer
costs what the busiest rank's grouped GEMM costs. Over a step every layer and micro-batch draws anew,
so the step's cost follows the expected busiest-rank load, estimated here from `DRAWS` seeded draws."""

import numpy as np

DRAWS = 256  # micro-batch draws the expected busiest-rank load is averaged over


def busiest_rank_factor(experts: int, ep: int, assignments: float, skew: float, seed: int) -> float:
    """Expected load of the busiest of `ep` ranks (each holding experts / ep consecutive experts) over
    the mean rank load, for `assignments` token-to-expert assignments per micro-batch across the EP
    group; 1.0 for balanced routing (skew 0) or a single rank. Seeded: the same scenario, the same factor."""
    if skew <= 0 or ep == 1:
        return 1.0
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, experts + 1) ** skew
    popularity /= popularity.sum()
    n = max(1, round(assignments))
    busiest = 0.0
    for _ in range(DRAWS):
        counts = rng.multinomial(n, popularity[rng.permutation(experts)])
        busiest += counts.reshape(ep, experts // ep).sum(axis=1).max()
    return float(busiest / DRAWS / (n / ep))
