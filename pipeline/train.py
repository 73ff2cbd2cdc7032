"""`wxemu train`: train a graph or transformer emulator on a canonical store with PyTorch Lightning.

Writes into RUN_DIR: ``config.yaml`` (the resolved config), ``checkpoints/last.ckpt`` (Lightning, for
``--resume`` only), ``csv/`` and ``tensorboard/`` logs, and at the end ``model.safetensors`` + ``model.json`` (the
self-contained checkpoint that ``wxemu forecast`` reads). Distributed: ``--devices N --strategy ddp`` (gloo on
CPU, NCCL on GPU), multi-node through Lightning's SLURM support (workflows/slurm/train.sbatch).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import yaml

from data_catalog.errors import ConfigError, WxemuError

HELP = "train a graph or transformer emulator on a canonical store"
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        choices=("graph", "transformer", "linear"),  # skill branch: + linear
        default=None,
        help="emulator kind (default: the config's model.kind, graph)",
    )
    parser.add_argument("--store", required=True, help="canonical Zarr store (path or fsspec URL)")
    parser.add_argument("--out", required=True, help="run directory (logs, checkpoints, model.safetensors)")
    parser.add_argument(
        "--config",
        default=None,
        help="training config YAML (pipeline/train_config.py); default: the demo's config of the model kind, "
        "pipeline/configs/demo_KIND.yaml",  # skill branch: was the TrainConfig defaults
    )
    parser.add_argument("--max-steps", type=int, default=None, help="override trainer.max_steps")
    parser.add_argument("--devices", default="auto", help="devices per node (int or 'auto')")
    parser.add_argument("--num-nodes", type=int, default=1)
    parser.add_argument("--strategy", choices=("ddp", "fsdp", "auto"), default="auto")
    parser.add_argument("--accelerator", choices=("cpu", "gpu", "auto"), default="auto")
    parser.add_argument("--resume", default=None, help="Lightning checkpoint (RUN_DIR/checkpoints/last.ckpt)")
    parser.add_argument("--seed", type=int, default=None, help="override trainer.seed")
    parser.add_argument("--num-workers", type=int, default=None, help="override data.num_workers")


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto`` -> bf16-mixed on a CUDA GPU with bf16 support, else 32-true."""
    if precision != "auto":
        return precision
    import torch

    if accelerator in ("gpu", "auto") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def _devices(value: str) -> int | str:
    try:
        return int(value)
    except ValueError:
        if value != "auto":
            raise ConfigError(f"--devices must be an integer or 'auto', got {value!r}") from None
        return value


def check_loss_weights(cfg: Any, channel_names: list[str], where: str) -> None:
    """ConfigError when ``loss.variable_weights``/``level_weights`` name variables/levels the store lacks."""
    variables = {n.partition("/")[0] for n in channel_names}
    levels = {n.partition("/")[2] for n in channel_names if "/" in n}
    for key, known, what in (
        (cfg.loss.variable_weights, variables, "variable"),
        (cfg.loss.level_weights, levels, "level"),
    ):
        unknown = sorted(set(key) - known)
        if unknown:
            raise ConfigError(
                f"{where}: loss.{what}_weights names {what}(s) {unknown} that the store does not "
                f"have (have: {sorted(known)})"
            )


def build_header(dm: Any, model: Any, config: dict[str, Any], store: str) -> dict[str, Any]:
    """The checkpoint header (pipeline.checkpoint) for a model trained on ``dm``'s store."""
    from data_catalog.store import root_attrs
    from models.forcings import forcing_names
    from pipeline.checkpoint import git_commit, wxemu_version

    attrs = root_attrs(store, storage_options=dm.storage_options or None)
    layout = dm.layout
    return {
        "model_kind": config["model"]["kind"],
        "model_config": model.config_dict(),
        "history": dm.history,
        "n_forcing": len(forcing_names(dm.forcing_spec)),
        "channel_names": list(layout.channel_names),
        "stats": dm.stats.to_dict(),
        "grid": {"latitude": layout.latitude.tolist(), "longitude": layout.longitude.tolist()},
        "time_step_hours": layout.step_hours,
        "step_hours": list(dm.step_hours),
        "forcing_spec": dm.forcing_spec.to_dict(),
        "forcing_names": list(forcing_names(dm.forcing_spec)),
        "static_fields": sorted(layout.static),
        "train_config": config,
        "store": {
            "path": str(store),
            "wxemu_version": attrs.get("wxemu_version"),
            "wxemu_sources": attrs.get("wxemu_sources"),
            "wxemu_stats_period": attrs.get("wxemu_stats_period"),
        },
        "wxemu_version": wxemu_version(),
        "git_commit": git_commit(),
    }


# Lightning notices that say nothing about the user's run: the task moves batches itself on purpose (normalisation
# on the device), and a deprecation inside Lightning's own pytree helper.
_QUIET = (r".*overridden `on_after_batch_transfer`.*", r".*isinstance\(treespec, LeafSpec\).*")


def run(args: argparse.Namespace) -> int:
    import warnings

    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    from models.base import build_model, count_parameters
    from models.forcings import forcing_names
    from pipeline.checkpoint import ExportModelCallback
    from pipeline.datamodule import WindowDataModule
    from pipeline.task import EmulatorTask
    from pipeline.train_config import load_train_config

    for pattern in _QUIET:
        warnings.filterwarnings("ignore", message=pattern)
    overrides: dict[str, dict[str, Any]] = {}
    if args.model:
        overrides["model"] = {"kind": args.model}
    if args.max_steps is not None:
        overrides.setdefault("trainer", {})["max_steps"] = args.max_steps
    if args.seed is not None:
        overrides.setdefault("trainer", {})["seed"] = args.seed
    if args.num_workers is not None:
        overrides["data"] = {"num_workers": args.num_workers}
    from pipeline.demo import config_path  # skill branch: no --config -> the demo's config of the kind

    cfg = load_train_config(args.config or config_path(args.model or "graph"), overrides)
    if cfg.model.kind == "linear":  # skill branch: closed-form fit, no gradient training
        from pipeline.linear_fit import fit_linear, format_val_rmse

        result = fit_linear(cfg, store=args.store, out=args.out)
        print(f"wxemu train: wrote {result.checkpoint} (least squares; one-step validation RMSE ", end="")
        print(f"{format_val_rmse(result.val_rmse)})")
        return 0
    config = cfg.model_dump(mode="json")
    out = Path(args.out)
    if args.resume and not Path(args.resume).exists():
        raise WxemuError(f"{args.resume}: no such checkpoint to resume from")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    pl.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    d = cfg.data
    index_dir = str(out / "ranks") if cfg.trainer.debug_ranks else None
    dm = WindowDataModule(
        args.store,
        train=d.train,
        val=d.val,
        test=d.test,
        history=d.history,
        rollout_steps=cfg.rollout.max_steps,
        step_hours=d.step_hours,
        batch_size=d.batch_size,
        num_workers=d.num_workers,
        prefetch_factor=d.prefetch_factor,
        contiguous=d.contiguous_batches,
        diff_stats_samples=d.diff_stats_samples,
        climatology_forcing=d.climatology_forcing,
        storage_options=d.storage_options,
        seed=cfg.trainer.seed,
    )
    dm.prepare()
    assert dm.layout is not None and dm.stats is not None
    check_loss_weights(cfg, dm.layout.channel_names, args.config or "defaults")
    n_forcing = len(forcing_names(dm.forcing_spec))
    model = build_model(
        cfg.model.kind,
        latitude=dm.layout.latitude,
        longitude=dm.layout.longitude,
        n_state=len(dm.layout.channel_names),
        n_forcing=n_forcing,
        history=d.history,
        config=cfg.model.config,
    )
    if getattr(model, "linear", None) is not None:  # skill branch: residual emulators start from the fitted regression
        from pipeline.linear_fit import fit_regression

        fit_regression(model.linear, dm)
    task = EmulatorTask(model, dm.stats, dm.layout.latitude, config, index_log_dir=index_dir)
    header = build_header(dm, model, config, args.store)

    accelerator = args.accelerator
    precision = resolve_precision(cfg.trainer.precision, accelerator)
    strategy: Any = args.strategy
    if strategy == "ddp":
        from pytorch_lightning.strategies import DDPStrategy

        strategy = DDPStrategy(process_group_backend="gloo" if accelerator == "cpu" else None)
    trainer = pl.Trainer(
        default_root_dir=str(out),
        max_steps=cfg.trainer.max_steps,
        max_epochs=-1,
        accelerator=accelerator,
        devices=_devices(args.devices),
        num_nodes=args.num_nodes,
        strategy=strategy,
        precision=precision,
        gradient_clip_val=cfg.optim.grad_clip,
        val_check_interval=cfg.trainer.val_every_n_steps,
        check_val_every_n_epoch=None,
        limit_val_batches=cfg.trainer.limit_val_batches,
        log_every_n_steps=cfg.trainer.log_every_n_steps,
        num_sanity_val_steps=0,
        deterministic=cfg.trainer.deterministic,
        use_distributed_sampler=False,
        logger=[
            CSVLogger(str(out), name="csv", version=""),
            TensorBoardLogger(str(out), name="tensorboard", version=""),
        ],
        callbacks=[
            ModelCheckpoint(
                dirpath=str(out / "checkpoints"),
                save_last=True,
                save_top_k=0,
                every_n_train_steps=cfg.trainer.val_every_n_steps,
            ),
            ExportModelCallback(out, header),
        ],
        enable_progress_bar=True,
    )
    if trainer.is_global_zero:
        print(
            f"wxemu train: {cfg.model.kind} emulator, {count_parameters(model):,} trainable parameters, "
            f"{len(dm.layout.channel_names)} channels + {n_forcing} forcings on a "
            f"{len(dm.layout.latitude)}x{len(dm.layout.longitude)} grid, precision {precision}",
            flush=True,
        )
    trainer.fit(task, datamodule=dm, ckpt_path=args.resume, weights_only=True)
    if trainer.global_step % cfg.trainer.val_every_n_steps != 0:
        trainer.validate(task, datamodule=dm, verbose=False)  # always end with validation metrics in the logs
    if index_dir is not None:
        from safetensors.torch import save_model

        save_model(model, str(Path(index_dir) / f"weights-rank{trainer.global_rank}.safetensors"))
    if trainer.is_global_zero:
        print(f"wxemu train: wrote {out / 'model.safetensors'} after {trainer.global_step} steps", flush=True)
    return 0
