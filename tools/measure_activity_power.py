"""Measure a GPU's board power per activity, for simulator/specs/power.yaml's activity fractions.

Samples `nvidia-smi --query-gpu=power.draw,clocks.sm` every 50 ms while the GPU does one thing at a
time: nothing (no process), a live CUDA context with no kernel (a pipeline bubble), one spinning
kernel (a GPU blocked in a collective that waits for data), large BF16 and FP8 GEMMs, fused causal
attention, and memory-bound elementwise work; prints per phase the median and 90th-percentile power,
the SM clock and the achieved rate. Changes no GPU setting (clocks and power limit stay as found).

Usage (needs PyTorch with CUDA):  python tools/measure_activity_power.py [--seconds 12] [--out DIR]
"""

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

FIELDS = "timestamp,power.draw,clocks.sm,clocks.mem,temperature.gpu,utilization.gpu"


def sampler(path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        ["nvidia-smi", f"--query-gpu={FIELDS}", "--format=csv,noheader,nounits", "-lms", "50", "-f", str(path)]
    )


def read_samples(path: Path) -> list[tuple[float, float, float]]:
    """(wall time s, power W, SM clock MHz) of every sample."""
    out = []
    for row in csv.reader(path.read_text().splitlines()):
        try:
            stamp = time.mktime(time.strptime(row[0].strip().split(".")[0], "%Y/%m/%d %H:%M:%S"))
            frac = float("0." + row[0].strip().split(".")[1]) if "." in row[0] else 0.0
            out.append((stamp + frac, float(row[1]), float(row[2])))
        except (ValueError, IndexError):
            continue
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--out", default="activity_power")
    parser.add_argument("--only", default="", help="comma-separated phase-name prefixes (default: all)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = subprocess.run(
        [
            "nvidia-smi",
            "--query-gpu=name,power.limit,power.default_limit,clocks.max.sm,clocks.max.mem,driver_version",
            "--format=csv,noheader",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    print("GPU:", info, flush=True)
    samples_path = out / "samples.csv"
    proc = sampler(samples_path)
    phases: list[tuple[str, float, float, dict]] = []
    secs = args.seconds

    def phase(name: str, body) -> None:
        if not wanted(name):
            return
        t0 = time.time()
        extra = body() or {}
        phases.append((name, t0, time.time(), extra))
        print(f"{name}: done {extra}", flush=True)

    time.sleep(1.0)
    only = set(args.only.split(",")) if args.only else None

    def wanted(name: str) -> bool:
        return only is None or any(name.startswith(o) for o in only)

    if wanted("idle"):
        phase("idle, no process", lambda: time.sleep(secs))
    import torch

    dev = torch.device("cuda")
    torch.ones(1, device=dev)
    torch.cuda.synchronize()
    phase("context, no kernel", lambda: time.sleep(secs))

    def spin() -> dict:
        # one block spinning on the clock: a kernel resident but doing no work, as NCCL's kernels wait
        end = time.time() + secs
        while time.time() < end:
            torch.cuda._sleep(int(1e8))
            torch.cuda.synchronize()
        return {}

    phase("one spinning kernel", spin)

    def gemm(dtype: str) -> dict:
        n = 8192
        a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        if dtype == "fp8":
            a8, b8 = a.to(torch.float8_e4m3fn), b.t().contiguous().t().to(torch.float8_e4m3fn)
            one = torch.tensor(1.0, device=dev)

            def op():
                return torch._scaled_mm(a8, b8, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
        else:

            def op():
                return a @ b

        for _ in range(5):
            op()
        torch.cuda.synchronize()
        count, t0 = 0, time.time()
        while time.time() - t0 < secs:
            for _ in range(20):
                op()
            torch.cuda.synchronize()
            count += 20
        return {"TFLOP/s": round(2 * n**3 * count / (time.time() - t0) / 1e12, 1)}

    phase("GEMM bf16 8192^3", lambda: gemm("bf16"))
    try:
        phase("GEMM fp8 8192^3", lambda: gemm("fp8"))
    except Exception as exc:  # noqa: BLE001 (an older PyTorch without _scaled_mm)
        print("fp8 GEMM skipped:", exc, flush=True)

    def attention() -> dict:
        import torch.nn.functional as F

        q = torch.randn(4, 32, 4096, 128, device=dev, dtype=torch.bfloat16)
        k, v = torch.randn_like(q), torch.randn_like(q)
        flops = 4 * 4 * 32 * 4096 * 4096 * 128 / 2  # causal forward
        count, t0 = 0, time.time()
        while time.time() - t0 < secs:
            for _ in range(10):
                F.scaled_dot_product_attention(q, k, v, is_causal=True)
            torch.cuda.synchronize()
            count += 10
        return {"TFLOP/s": round(flops * count / (time.time() - t0) / 1e12, 1)}

    phase("causal attention bf16 (fused)", attention)

    def elementwise() -> dict:
        x = torch.randn(512 * 2**20, device=dev, dtype=torch.bfloat16)  # 1 GiB
        y = torch.randn_like(x)
        count, t0 = 0, time.time()
        while time.time() - t0 < secs:
            for _ in range(20):
                torch.add(x, y, out=x)
            torch.cuda.synchronize()
            count += 20
        return {"GB/s": round(3 * x.numel() * 2 * count / (time.time() - t0) / 1e9, 1)}

    phase("elementwise add bf16 (memory-bound)", elementwise)

    def layernorm() -> dict:
        x = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)  # a micro-batch's activations
        w = torch.ones(8192, device=dev, dtype=torch.bfloat16)
        count, t0 = 0, time.time()
        while time.time() - t0 < secs:
            for _ in range(50):
                torch.nn.functional.layer_norm(x, (8192,), w, w)
            torch.cuda.synchronize()
            count += 50
        return {"GB/s": round(2 * x.numel() * 2 * count / (time.time() - t0) / 1e9, 1)}

    phase("layer norm bf16 [8192, 8192]", layernorm)

    def adam() -> dict:
        params = [torch.randn(64 * 2**20, device=dev, requires_grad=True) for _ in range(8)]  # 0.5 G fp32
        for p in params:
            p.grad = torch.randn_like(p)
        opt = torch.optim.Adam(params, lr=1e-4, fused=True)
        count, t0 = 0, time.time()
        while time.time() - t0 < secs:
            opt.step()
            torch.cuda.synchronize()
            count += 1
        return {"steps/s": round(count / (time.time() - t0), 2)}

    phase("fused Adam step, fp32 (optimizer)", adam)

    def small_gemm() -> dict:
        a = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16)
        b = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16)
        count, t0 = 0, time.time()
        while time.time() - t0 < secs:
            for _ in range(100):
                a @ b
            torch.cuda.synchronize()
            count += 100
        return {"TFLOP/s": round(2 * 4096**3 * count / (time.time() - t0) / 1e12, 1)}

    phase("GEMM bf16 4096^3", small_gemm)
    time.sleep(1.0)
    proc.terminate()
    proc.wait()
    samples = read_samples(samples_path)
    rows = []
    for name, t0, t1, extra in phases:
        inside = [(p, c) for t, p, c in samples if t0 + 1.0 <= t <= t1 - 0.2]  # skip the ramp-in
        if not inside:
            continue
        watts = sorted(p for p, _ in inside)
        row = {
            "phase": name,
            "samples": len(inside),
            "power_W_median": round(statistics.median(watts), 1),
            "power_W_p90": round(watts[int(0.9 * (len(watts) - 1))], 1),
            "sm_clock_MHz_median": statistics.median(c for _, c in inside),
            **extra,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    (out / "summary.json").write_text(json.dumps({"gpu": info, "phases": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
