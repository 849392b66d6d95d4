"""Short human labels of results, shared by plots and tables: "TP8 PP8 DP16 v2 Z1 mb1 full"."""

from typing import Any


def plan_label(result: dict[str, Any]) -> str:
    """The parallel plan of a result JSON in a few tokens: degrees (CP only when > 1), virtual stages
    when interleaved, SP, a GPipe schedule, ZeRO stage, micro-batch size, recompute (with its layer
    limit, e.g. "full(2)"), DP overlap.
    Reads the search's `parallelism`/`training` settings, else the result's `plan` (section 3)."""
    p = result.get("parallelism") or result.get("plan") or {}
    t = result.get("training") or {}
    parts = [f"TP{p.get('tp', 1)}", f"PP{p.get('pp', 1)}", f"DP{p.get('dp', '?')}"]
    if p.get("cp", 1) > 1:
        parts.append(f"CP{p['cp']}")
    if p.get("virtual_stages", 1) > 1:
        parts.append(f"v{p['virtual_stages']}")
    if p.get("sequence_parallel"):
        parts.append("SP")
    if p.get("schedule") == "gpipe":
        parts.append("gpipe")
    if "zero" in p:
        parts.append(f"Z{p['zero']}")
    if "micro_batch" in t:
        parts.append(f"mb{t['micro_batch']}")
    if p.get("recompute", "none") != "none":
        limit = p.get("recompute_layers")
        parts.append(f"{p['recompute']}({limit})" if limit else str(p["recompute"]))
    if p.get("dp_overlap"):
        parts.append("overlap")
    return " ".join(parts)


def gpu_count(result: dict[str, Any]) -> int | None:
    """GPUs of a result's plan (dp * tp * pp * cp), None when the plan is not in the JSON."""
    p = result.get("plan") or result.get("parallelism") or {}
    if not all(isinstance(p.get(k, 1), int) for k in ("dp", "tp", "pp", "cp")) or "dp" not in p:
        return None
    return p["dp"] * p.get("tp", 1) * p.get("pp", 1) * p.get("cp", 1)
