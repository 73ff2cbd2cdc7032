"""`wxemu explain`: flags -> ExplainConfig -> :func:`pipeline.explain.explain` -> a printed summary."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape

from data_catalog.samples import data_dir
from pipeline.explain.config import BASELINES, METHODS, ExplainConfig
from pipeline.explain.output import write_figures
from pipeline.explain.run import explain

HELP = "attribute a region-mean forecast to its inputs (integrated gradients, SmoothGrad), with faithfulness checks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="RUN_DIR or RUN_DIR/model.safetensors")
    parser.add_argument("--store", required=True, help="canonical analysis store with the initial state")
    parser.add_argument("--init", required=True, help="initial time, e.g. 2019-03-25T00")
    parser.add_argument("--lead", default="24h", help="lead to explain (default 24h)")
    parser.add_argument("--region", default="uk", help="named region or box lat0,lat1,lon0,lon1 (default uk)")
    parser.add_argument("--variable", default="2m_temperature", help="variable to explain")
    parser.add_argument("--level", type=int, default=None, help="pressure level (hPa) of --variable")
    parser.add_argument(
        "--forecast", default=None, metavar="STORE", help="follow the paths this forecast store used (lagged paths)"
    )
    parser.add_argument("--lag", default=None, help="lagged path: one trained step from LAG before --init (e.g. 1h)")
    parser.add_argument("--method", choices=METHODS, default="integrated_gradients")
    parser.add_argument("--baseline", choices=BASELINES, default="climatology", help="reference input state")
    parser.add_argument("--steps", type=int, default=32, help="integrated-gradients points")
    parser.add_argument("--samples", type=int, default=16, help="SmoothGrad samples")
    parser.add_argument("--random-orderings", type=int, default=8, help="random orderings for the faithfulness curves")
    parser.add_argument("--out", default=None, help="explanation Zarr store to write")
    parser.add_argument("--figures", default=None, metavar="DIR", help="also write PNG figures into DIR")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    config = ExplainConfig(
        checkpoint=args.checkpoint,
        store=args.store,
        init=args.init,
        lead=args.lead,
        variable=args.variable,
        level=args.level,
        region=args.region,
        method=args.method,
        baseline=args.baseline,
        n_steps=args.steps,
        n_samples=args.samples,
        random_orderings=args.random_orderings,
        out=args.out,
        seed=args.seed,
        lag=args.lag,
        forecast=args.forecast,
    )
    result = explain(config, device=args.device, progress=True)
    console = Console(highlight=False)
    for key, value in result.numbers.items():
        console.print(f"  {escape(key)}: {value:.4g}")
    if args.figures:
        for path in write_figures(result.attributions, args.figures, cartopy_data_dir=f"{data_dir()}/cartopy"):
            console.print(f"wxemu explain: wrote {escape(path)}")
    return 0
