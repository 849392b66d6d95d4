"""Run validation cases and tabulate published vs predicted, with % errors per group."""

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from simulator.results.table import Table
from simulator.scenario.errors import ConfigError
from simulator.scenario.load import setup_from_mapping
from simulator.scenario.setup import Setup
from simulator.simulate import simulate
from simulator.validation.case import METRICS
from simulator.validation.cases import Case


@dataclass(frozen=True)
class Row:
    case: str
    group: str
    metric: str
    published: float
    predicted: float | None
    note: str = ""

    @property
    def error_pct(self) -> float | None:
        if self.predicted is None:
            return None
        return 100.0 * (self.predicted - self.published) / self.published


def resolve_cases(path: Path, cases: list[Case]) -> tuple[list[tuple[Case, Setup]], list[str]]:
    """Each case's scenario resolved, before any is simulated; a case whose scenario is invalid is a
    problem line naming the file and the case (a broken validation file, not a row to skip)."""
    resolved, problems = [], []
    for i, case in enumerate(cases):
        try:
            resolved.append((case, setup_from_mapping(case.scenario)))
        except ConfigError as exc:
            problems += [f"{path}: case {i + 1} ({case.id}): scenario: {p}" for p in exc.problems]
    return resolved, problems


def simulate_case(case: Case, setup: Setup | None = None) -> list[Row]:
    """The case's rows, published against predicted; `setup` is its resolved scenario when known."""
    try:
        result = simulate(setup or setup_from_mapping(case.scenario)).to_dict()
    except ConfigError as exc:
        return [
            Row(case.id, case.group, m, v, None, "; ".join(exc.problems))
            for m, v in case.published.items()
            if m in METRICS
        ]
    rows = []
    for metric, value in case.published.items():
        if metric not in METRICS:
            continue
        section, key = METRICS[metric]
        predicted = result.get(section, {}).get(key)
        note = "" if result["feasible"] else "predicted out of memory"
        rows.append(Row(case.id, case.group, metric, float(value), predicted, note))
    return rows


@dataclass(frozen=True)
class GroupSummary:
    group: str
    metric: str
    cases: int
    mape: float
    worst_case: str
    worst_pct: float


def summarise(rows: list[Row]) -> list[GroupSummary]:
    by: dict[tuple[str, str], list[tuple[Row, float]]] = defaultdict(list)
    for r in rows:
        if (err := r.error_pct) is not None:
            by[(r.group, r.metric)].append((r, err))
    out = []
    for (group, metric), errs in by.items():
        worst, worst_pct = max(errs, key=lambda re: abs(re[1]))
        mape = sum(abs(e) for _, e in errs) / len(errs)
        out.append(GroupSummary(group, metric, len(errs), mape, worst.case, worst_pct))
    return out


def case_table(rows: list[Row]) -> Table:
    cells = [
        [
            r.case,
            r.metric,
            f"{r.published:.4g}",
            f"{r.predicted:.4g}" if r.predicted is not None else "-",
            f"{r.error_pct:+.1f}" if r.error_pct is not None else "-",
            r.note,
        ]
        for r in rows
    ]
    return Table(["case", "metric", "published", "predicted", "error %", "note"], cells, frozenset({0, 1, 5}))


def summary_table(summaries: list[GroupSummary]) -> Table:
    cells = [[s.group, s.metric, str(s.cases), f"{s.mape:.1f}", s.worst_case, f"{s.worst_pct:+.1f}"] for s in summaries]
    return Table(["group", "metric", "cases", "MAPE %", "worst case", "worst %"], cells, frozenset({0, 1, 4}))
