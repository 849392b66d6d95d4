"""Ranking within studies: do the predictions order a study's plans as the measurements do?

A study is a set of cases that differ only in the parallel plan: the same model, cluster (GPU
type and count, network), sequence length and global batch (e.g. Megatron-LM Table 2's PTD-P and ZeRO-3 rows at 384
GPUs, or vTrain's 3.6B model on 64 GPUs). A validation file may also declare its studies: cases with
the same `study` key (MoE Parallel Folding's "folding" and "mcore" plans of one model at one GPU count,
whose sources name each plan apart). The question a user asks of a simulator is "which plan is
faster", so for every pair of cases in a study we count whether the predicted step times order them
as the published ones do (ties in either are left out), and whether the study's fastest case is
predicted fastest."""

import json
from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations

from simulator.results.table import Table
from simulator.validation.cases import Case
from simulator.validation.runner import Row

METRIC = "iteration_time_s"


def study_of(case: Case) -> str:
    """The study a case was declared in (its file's `study` key, checked on loading to share all but
    the plan), else what the cases of one study share: the publication (one software stack, measured
    together), model, cluster (GPU type and count, network), global batch, precision. The vocabulary
    is left out: Megatron pads it to a multiple of 128*tp, so it follows the plan."""
    if case.study:
        return json.dumps({"study": case.study})
    sc = case.scenario
    model = {k: v for k, v in (sc.get("model") or {}).items() if k != "vocab"}
    shared = {
        "source": case.source,
        "model": model,
        "cluster": sc.get("cluster"),
        "global_batch": sc.get("training", {}).get("global_batch"),
        "precision": sc.get("training", {}).get("precision"),
    }
    return json.dumps(shared, sort_keys=True)


@dataclass(frozen=True)
class RankingSummary:
    group: str
    studies: int  # studies with at least two cases
    pairs: int  # pairs ordered differently by neither tie
    agreement_pct: float  # of those pairs, ordered as published
    fastest_found: int  # studies whose published fastest case is also predicted fastest


def rank_agreement(cases: list[Case], rows: list[Row]) -> list[RankingSummary]:
    times = {r.case: (r.published, r.predicted) for r in rows if r.metric == METRIC and r.predicted is not None}
    studies: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    for c in cases:
        if c.id in times:
            published, predicted = times[c.id]
            assert predicted is not None
            studies[study_of(c)].append((c.group, published, predicted))
    # a study is reported under the groups its cases come from ("a+b" when it spans two, as
    # Megatron-LM Table 2's PTD-P and ZeRO-3 rows at the same GPU count do)
    by_group: dict[str, list[list[tuple[float, float]]]] = defaultdict(list)
    for members in studies.values():
        if len(members) >= 2:
            label = "+".join(sorted({g for g, _, _ in members}))
            by_group[label].append([(p, s) for _, p, s in members])
    out = []
    for group, study_list in by_group.items():
        agree = disagree = fastest = 0
        for study in study_list:
            for (p1, s1), (p2, s2) in combinations(study, 2):
                sign = float((p1 - p2) * (s1 - s2))
                agree += int(sign > 0)
                disagree += int(sign < 0)
            fastest += int(min(study)[0] == min(study, key=lambda m: m[1])[0])
        pairs = agree + disagree
        out.append(RankingSummary(group, len(study_list), pairs, 100.0 * agree / pairs if pairs else 100.0, fastest))
    return out


def ranking_table(summaries: list[RankingSummary]) -> Table:
    cells = [
        [s.group, str(s.studies), str(s.pairs), f"{s.agreement_pct:.1f}", f"{s.fastest_found} of {s.studies}"]
        for s in summaries
    ]
    return Table(["group", "studies", "pairs", "same order %", "fastest plan found"], cells)
