"""The result store: every simulated candidate of a search, in one SQLite file, keyed by the hash
of its resolved scenario (`scenario.canonical.scenario_key`). A search writes each result as it arrives, one
transaction per result, so an interrupted search loses nothing it finished and a rerun with the
same store simulates only what is missing. SQLite's journal makes each write atomic; WAL mode lets
a reader look at the store while a search is writing to it."""

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,      -- sha256 of the resolved scenario and the simulator version
    label TEXT NOT NULL,       -- the plan, readable: 'TP8 PP8 DP16 interleaved v2 Z1 mb1 full'
    scenario TEXT NOT NULL,    -- scenario name
    result TEXT NOT NULL,      -- the search result JSON (contract run JSON + parallelism, training)
    created_s REAL NOT NULL    -- Unix time
);
CREATE TABLE IF NOT EXISTS searches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scenario TEXT NOT NULL,
    objective TEXT NOT NULL,
    candidates INTEGER NOT NULL,
    feasible INTEGER NOT NULL,
    simulated INTEGER NOT NULL,   -- run by this search
    reused INTEGER NOT NULL,      -- found in the store
    wall_s REAL NOT NULL,
    finished_s REAL NOT NULL
);
"""


def default_store_path(out_dir: Path | None) -> Path:
    """Next to the outputs when there are any (`--out DIR`), else in the user's cache directory."""
    if out_dir is not None:
        return out_dir / "results.sqlite"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "llm-cluster-simulator" / "results.sqlite"


class ResultStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=60.0, isolation_level=None)  # autocommit; explicit BEGIN
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Stored results for whichever of `keys` are present."""
        wanted = list(keys)
        found: dict[str, dict[str, Any]] = {}
        for i in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for key, text in self._db.execute(f"SELECT key, result FROM results WHERE key IN ({marks})", chunk):
                found[key] = json.loads(text)
        return found

    def put(self, key: str, label: str, result: dict[str, Any]) -> None:
        """Record one result; atomic (all of it or nothing) and durable once it returns."""
        text = json.dumps(result, allow_nan=False)
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO results (key, label, scenario, result, created_s) VALUES (?, ?, ?, ?, ?)",
                (key, label, result.get("name", ""), text, time.time()),
            )

    def record_search(self, scenario: str, objective: str, counts: dict[str, int], wall_s: float) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT INTO searches (scenario, objective, candidates, feasible, simulated, reused, wall_s, "
                "finished_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    scenario,
                    objective,
                    counts["candidates"],
                    counts["feasible"],
                    counts["simulated"],
                    counts["reused"],
                    wall_s,
                    time.time(),
                ),
            )

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
