"""Training-step throughput of the emulators: forward + backward + optimiser step, samples per second.

Cases: {graph, transformer} x {small (the defaults), large} x {UK sample grid 33 x 49 with 1 state channel,
global 1.5 deg grid 121 x 240 with 69 state channels}, on CPU, and on CUDA with bf16 autocast when a GPU is
present (there the achieved TFLOP/s, from torch.utils.flop_counter, is printed against the card's bf16 peak).
Also times sum aggregation by ``index_add_`` against ``scatter_reduce_`` for the graph model.

    python benchmarks/train_step.py                 # everything (CPU global cases take a few minutes)
    python benchmarks/train_step.py --quick         # UK grid only, CPU
    python benchmarks/train_step.py --threads 1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models import build_model, count_parameters
from models.graph_net import AGGREGATIONS, aggregate_sum

GRIDS = {
    # name: (latitude, longitude, n_state, n_forcing, CPU batch, GPU batch)
    "uk-0.25deg": (np.linspace(50.0, 58.0, 33), np.linspace(350.0, 362.0, 49), 1, 5, 8, 32),
    "global-1.5deg": (np.linspace(-90.0, 90.0, 121), np.arange(240) * 1.5, 69, 7, 1, 4),
}
SIZES = {
    "graph": {"small": {}, "large": {"latent": 128, "processor_layers": 8}},
    "transformer": {"small": {}, "large": {"dim": 384, "depth": 8, "heads": 6}},
}
# Dense bf16 tensor-core peak, TFLOP/s.
BF16_PEAK = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "V100": 125.0}


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in BF16_PEAK.items() if k in name), None)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_train_step(
    kind: str, size: str, grid: str, device: torch.device, *, budget_s: float, config_extra: dict | None = None
) -> dict:
    """Time forward + backward + AdamW step; returns a result row."""
    lat, lon, n_state, n_forcing, b_cpu, b_gpu = GRIDS[grid]
    batch = b_gpu if device.type == "cuda" else b_cpu
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = build_model(
        kind,
        latitude=lat,
        longitude=lon,
        n_state=n_state,
        n_forcing=n_forcing,
        config={**SIZES[kind][size], **(config_extra or {})},
    ).to(device)
    build_s = time.perf_counter() - t0
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    state = torch.randn(batch, n_state, len(lat), len(lon), device=device)
    forc = torch.randn(batch, n_forcing, len(lat), len(lon), device=device)
    target = torch.randn(batch, n_state, len(lat), len(lon), device=device)
    lead = torch.full((batch,), 6.0, device=device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()

    def step() -> None:
        with amp:
            loss = (model(state, forc, lead).float() - target).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as counter:
        step()  # also the warm-up
    flops = counter.get_total_flops()
    step()
    _sync(device)
    times: list[float] = []
    while not times or (sum(times) < budget_s and len(times) < 50):
        t = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t)
    sec = float(np.median(times))
    row = {
        "model": kind,
        "size": size,
        "grid": grid,
        "device": str(device),
        "batch": batch,
        "params": count_parameters(model),
        "build_s": build_s,
        "step_s": sec,
        "samples_per_s": batch / sec,
        "gflop_per_step": flops / 1e9,
        "tflops": flops / sec / 1e12,
        "repeats": len(times),
    }
    peak = peak_tflops(device)
    if peak:
        row["peak_fraction"] = row["tflops"] / peak
    if kind == "graph":
        row["mesh_nodes"] = model.graph_info["mesh_nodes"]
    return row


def time_aggregation(
    device: torch.device,
    *,
    n_edges: int = 40_000,
    n_nodes: int = 13_000,
    d: int = 48,
    batch: int = 8,
    repeats: int = 10,
    rounds: int = 5,
) -> dict[str, float]:
    """Seconds per forward + backward of sum aggregation (B, E, D) -> (B, N, D), per method: the best of
    ``rounds`` alternating rounds of ``repeats`` calls (alternating, so load changes hit both methods)."""
    g = torch.Generator().manual_seed(0)
    recv = torch.randint(0, n_nodes, (n_edges,), generator=g).to(device)
    msgs = torch.randn(batch, n_edges, d, generator=g).to(device).requires_grad_(True)
    best = dict.fromkeys(AGGREGATIONS, float("inf"))
    for _ in range(rounds):
        for method in AGGREGATIONS:
            aggregate_sum(msgs, recv, n_nodes, method).sum().backward()  # warm-up
            _sync(device)
            t = time.perf_counter()
            for _ in range(repeats):
                aggregate_sum(msgs, recv, n_nodes, method).sum().backward()
            _sync(device)
            best[method] = min(best[method], (time.perf_counter() - t) / repeats)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="UK grid only")
    p.add_argument("--cpu-only", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--budget", type=float, default=3.0, help="seconds of timed steps per case")
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.cpu_only:
        devices.append(torch.device("cuda"))
    grids = ["uk-0.25deg"] if args.quick else list(GRIDS)
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, devices {[str(d) for d in devices]}")

    rows = []
    for device in devices:
        for grid in grids:
            for kind, sizes in SIZES.items():
                for size in sizes:
                    rows.append(time_train_step(kind, size, grid, device, budget_s=args.budget))
                    r = rows[-1]
                    print(
                        f"  {r['device']:5s} {r['grid']:14s} {r['model']:11s} {r['size']:5s} "
                        f"{r['samples_per_s']:8.2f} samples/s",
                        flush=True,
                    )

    header = (
        f"{'device':6s} {'grid':14s} {'model':11s} {'size':5s} {'batch':>5s} {'params':>10s} "
        f"{'step s':>8s} {'samples/s':>9s} {'GFLOP/step':>10s} {'TFLOP/s':>8s} {'of peak':>7s}"
    )
    print("\nforward + backward + AdamW step (median)")
    print(header)
    print("-" * len(header))
    for r in rows:
        frac = f"{100 * r['peak_fraction']:6.1f}%" if "peak_fraction" in r else "      -"
        print(
            f"{r['device']:6s} {r['grid']:14s} {r['model']:11s} {r['size']:5s} {r['batch']:5d} "
            f"{r['params']:10,d} {r['step_s']:8.3f} {r['samples_per_s']:9.2f} {r['gflop_per_step']:10.1f} "
            f"{r['tflops']:8.3f} {frac}"
        )

    print("\ngraph aggregation, forward + backward of a (8, 40000, 48) -> (8, 13000, 48) sum")
    agg_rows = []
    for device in devices:
        agg = time_aggregation(device)
        agg_rows.append({"device": str(device), **agg})
        best = min(agg, key=agg.get)
        print(f"  {device}: " + ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in agg.items()) + f"  -> {best}")
    uk_rows = []
    for method in ("index_add", "scatter_reduce"):
        r = time_train_step(
            "graph", "small", "uk-0.25deg", devices[0], budget_s=args.budget, config_extra={"aggregation": method}
        )
        uk_rows.append({"aggregation": method, **r})
        print(f"  graph small UK train step, {method}: {1e3 * r['step_s']:.1f} ms")
    if args.json:
        args.json.write_text(
            json.dumps({"train_step": rows, "aggregation": agg_rows, "aggregation_train_step": uk_rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
