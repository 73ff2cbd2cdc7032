"""`wxemu train`: train an emulator (a registered model kind) on a canonical store with PyTorch Lightning.

``train(TrainConfig, store=..., out=RUN_DIR, devices=..., ...) -> TrainResult``. Writes into RUN_DIR (see
pipeline.run_dir): ``config.yaml`` (the resolved config), ``run.json``, ``checkpoints/last.ckpt`` (Lightning,
for resuming only), ``csv/`` and ``tensorboard/`` logs, and at the end ``model.safetensors`` + ``model.json``
(the self-contained checkpoint that ``forecast`` reads). The same call on a killed run resumes from its last
checkpoint (keeping its metrics); a folder holding another run is refused. Distributed: ``devices=N,
strategy="ddp"`` (gloo on CPU, NCCL on GPU), multi-node through Lightning's SLURM support
(workflows/slurm/train.sbatch).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.utilities import rank_zero_only
from safetensors.torch import save_model

from data_catalog.errors import ConfigError, WxemuError
from models.base import build_model, count_parameters
from models.forcings import forcing_names
from models.registry import model_kinds
from pipeline.checkpoint import CheckpointError, build_header, check_lightning_checkpoint, save_checkpoint
from pipeline.datamodule import WindowDataModule
from pipeline.linear_fit import fit_linear, fit_regression
from pipeline.run_dir import LAST_CKPT, kept_metrics, plan_run, record_run, remove_model, restore_metrics
from pipeline.task import EmulatorTask
from pipeline.train_config import TrainConfig, default_config_path

HELP = "train a graph or transformer emulator on a canonical store"
log = logging.getLogger(__name__)


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto`` -> bf16-mixed on a CUDA GPU with bf16 support, else 32-true."""
    if precision != "auto":
        return precision
    if accelerator in ("gpu", "auto") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def _devices(value: int | str) -> int | str:
    try:
        return int(value)
    except ValueError:
        if value != "auto":
            raise ConfigError(f"devices: must be an integer or 'auto', got {value!r}") from None
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


# Lightning notices that say nothing about the user's run: the task moves batches itself on purpose (normalisation
# on the device), a deprecation inside Lightning's own pytree helper, the CSV logger's notice about the metrics
# file that a resumed run restores, and the mid-epoch resume notice (an epoch's batches are a seeded shuffle).
_QUIET = (
    r".*overridden `on_after_batch_transfer`.*",
    r".*isinstance\(treespec, LeafSpec\).*",
    r".*Experiment logs directory .* exists and is not empty.*",
    r".*resuming from a checkpoint that ended before the epoch ended.*",
)


class ExportModelCallback(pl.Callback):
    """At the end of ``fit`` (rank 0), export the eval weights (EMA if on) to ``run_dir/model.safetensors``."""

    def __init__(self, run_dir: str | Path, header: dict[str, Any]) -> None:
        self.run_dir = Path(run_dir)
        self.header = header

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            model = getattr(pl_module, "eval_model", pl_module)
            header = {
                **self.header,
                "global_step": int(trainer.global_step),
                "weights": "ema" if getattr(pl_module, "ema", None) is not None else "last",
            }
            was = next(model.parameters()).device
            save_checkpoint(self.run_dir / "model.safetensors", model, header)
            model.to(was)


class FlushMetricsCallback(pl.Callback):
    """Write the loggers' pending rows whenever a checkpoint is saved, so every metric up to a checkpoint is on disk
    when the checkpoint is: a run interrupted later and resumed from it keeps them."""

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.save()


class TrainingInterrupted(WxemuError):
    """Training stopped by the user (Ctrl+C); the message says how to resume."""


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """``checkpoint``: RUN_DIR/model.safetensors (what ``forecast`` reads); ``run_dir``; ``steps``: the optimiser
    steps the model was trained for; ``resumed_from_step``: the step this call resumed from (0: from scratch);
    ``already_trained``: the run had already finished, nothing was trained by this call."""

    checkpoint: str
    run_dir: str
    steps: int
    resumed_from_step: int = 0
    already_trained: bool = False


def _check_resume_matches(task: EmulatorTask, ckpt_path: Path) -> None:
    """CheckpointError unless the Lightning checkpoint holds the weights of ``task``'s model (names and shapes)."""
    saved = check_lightning_checkpoint(ckpt_path)["state_dict"]
    want = {k: tuple(v.shape) for k, v in task.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in saved.items() if isinstance(v, torch.Tensor)}
    if want != have:
        diff = sorted(set(want) ^ set(have)) or sorted(k for k in want if want[k] != have[k])
        raise CheckpointError(
            f"{ckpt_path}: holds the weights of another model than this config's "
            f"{task.cfg['model']['kind']} model (e.g. {diff[0]!r}); resume a checkpoint of this run"
        )


def train(
    config: TrainConfig,
    *,
    store: str,
    out: str | Path,
    devices: int | str = "auto",
    accelerator: str = "auto",
    strategy: str = "auto",
    num_nodes: int = 1,
    resume: str | Path | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train ``config`` on the canonical ``store`` into the run directory ``out`` and export the model.

    ``devices``/``accelerator`` (cpu, gpu, auto)/``strategy`` (ddp, fsdp, auto)/``num_nodes``: where it runs;
    ``resume``: a Lightning checkpoint to continue from (default: ``out``'s own last checkpoint when ``out``
    holds this run, killed); ``progress``: print what is trained and Lightning's progress bar.
    """
    with warnings.catch_warnings():  # only for this call: no process-wide filters from a library function
        for pattern in _QUIET:
            warnings.filterwarnings("ignore", message=pattern)
        return _train(
            config,
            store=store,
            out=out,
            devices=devices,
            accelerator=accelerator,
            strategy=strategy,
            num_nodes=num_nodes,
            resume=resume,
            progress=progress,
        )


def _train(
    config: TrainConfig,
    *,
    store: str,
    out: str | Path,
    devices: int | str,
    accelerator: str,
    strategy: str,
    num_nodes: int,
    resume: str | Path | None,
    progress: bool,
) -> TrainResult:
    config_dict = config.to_dict()
    out = Path(out)
    plan = plan_run(out, config_dict, str(store), resume)
    rank0 = rank_zero_only.rank == 0
    if plan.finished:
        if progress and rank0:
            print(
                f"wxemu train: {out} already holds this run, trained {plan.resume_step} steps: "
                f"{out / 'model.safetensors'} (to train again, delete {out} or choose another --out)",
                flush=True,
            )
        return TrainResult(str(out / "model.safetensors"), str(out), plan.resume_step, plan.resume_step, True)
    if config.model.kind == "linear":  # a closed-form least-squares fit, no gradient steps
        fitted = fit_linear(config, store=str(store), out=out)
        record_run(out, config_dict, str(store))
        return TrainResult(str(fitted.checkpoint), str(out), 0, 0)
    pl.seed_everything(config.trainer.seed, workers=True, verbose=False)
    d = config.data
    index_dir = str(out / "ranks") if config.trainer.debug_ranks else None
    dm = WindowDataModule(
        str(store),
        train=d.train,
        val=d.val,
        test=d.test,
        history=d.history,
        rollout_steps=config.rollout.max_steps,
        step_hours=d.step_hours,
        batch_size=d.batch_size,
        num_workers=d.num_workers,
        prefetch_factor=d.prefetch_factor,
        contiguous=d.contiguous_batches,
        diff_stats_samples=d.diff_stats_samples,
        climatology_forcing=d.climatology_forcing,
        yesterday_change=d.yesterday_change,
        storage_options=d.storage_options,
        seed=config.trainer.seed,
    )
    dm.prepare()
    assert dm.layout is not None and dm.stats is not None
    check_loss_weights(config, dm.layout.channel_names, "training config")
    n_forcing = len(forcing_names(dm.forcing_spec))
    model = build_model(
        config.model.kind,
        latitude=dm.layout.latitude,
        longitude=dm.layout.longitude,
        n_state=len(dm.layout.channel_names),
        n_forcing=n_forcing,
        history=d.history,
        config=config.model.config,
    )
    if getattr(model, "linear", None) is not None:  # a residual emulator starts from its fitted linear part
        fit_regression(model.linear, dm)
    task = EmulatorTask(model, dm.stats, dm.layout.latitude, config_dict, index_log_dir=index_dir)
    if plan.resume_from is not None:
        _check_resume_matches(task, plan.resume_from)
    header = build_header(dm, model, config_dict, str(store))
    if rank0:  # the inputs are valid: the folder now holds this run
        record_run(out, config_dict, str(store))
        remove_model(out)

    precision = resolve_precision(config.trainer.precision, accelerator)
    strategy_obj: Any = strategy
    if strategy == "ddp":
        strategy_obj = DDPStrategy(process_group_backend="gloo" if accelerator == "cpu" else None)
    metrics_header, metrics_rows = kept_metrics(out, plan.resume_step) if plan.resume_from else ([], [])
    csv_logger = CSVLogger(str(out), name="csv", version="")
    trainer = pl.Trainer(
        default_root_dir=str(out),
        max_steps=config.trainer.max_steps,
        max_epochs=-1,
        accelerator=accelerator,
        devices=_devices(devices),
        num_nodes=num_nodes,
        strategy=strategy_obj,
        precision=precision,
        gradient_clip_val=config.optim.grad_clip,
        val_check_interval=config.trainer.val_every_n_steps,
        check_val_every_n_epoch=None,
        limit_val_batches=config.trainer.limit_val_batches,
        log_every_n_steps=config.trainer.log_every_n_steps,
        num_sanity_val_steps=0,
        deterministic=config.trainer.deterministic,
        use_distributed_sampler=False,
        logger=[csv_logger, TensorBoardLogger(str(out), name="tensorboard", version="")],
        callbacks=[
            ModelCheckpoint(
                dirpath=str(out / "checkpoints"),
                save_last=True,
                save_top_k=0,
                every_n_train_steps=config.trainer.val_every_n_steps,
                enable_version_counter=False,
            ),
            ExportModelCallback(out, header),
            FlushMetricsCallback(),
        ],
        enable_progress_bar=progress,
        enable_model_summary=progress,
    )
    if trainer.is_global_zero and metrics_rows:
        writer = csv_logger.experiment  # creating the writer clears metrics.csv; the resumed run keeps its rows
        restore_metrics(out, metrics_header, metrics_rows)
        writer.metrics_keys = list(metrics_header)
    if trainer.is_global_zero and progress:
        how = f"resuming from {plan.resume_from} at step {plan.resume_step}" if plan.resume_from else "from step 0"
        print(
            f"wxemu train: {config.model.kind} emulator, {count_parameters(model):,} trainable parameters, "
            f"{len(dm.layout.channel_names)} channels + {n_forcing} forcings on a "
            f"{len(dm.layout.latitude)}x{len(dm.layout.longitude)} grid, precision {precision}, {how}",
            flush=True,
        )
    try:
        trainer.fit(
            task, datamodule=dm, ckpt_path=str(plan.resume_from) if plan.resume_from else None, weights_only=True
        )
    except SystemExit:  # Lightning's answer to Ctrl+C, after its graceful shutdown
        last = out / LAST_CKPT
        raise TrainingInterrupted(
            f"{out}: training interrupted at step {trainer.global_step}; "
            + (
                f"re-run the same command to resume from {last}"
                if last.is_file()
                else "no checkpoint was written yet; re-run the same command to start again"
            )
        ) from None
    if trainer.global_step % config.trainer.val_every_n_steps != 0:
        trainer.validate(task, datamodule=dm, verbose=False)  # always end with validation metrics in the logs
    if index_dir is not None:
        save_model(model, str(Path(index_dir) / f"weights-rank{trainer.global_rank}.safetensors"))
    return TrainResult(str(out / "model.safetensors"), str(out), int(trainer.global_step), plan.resume_step)


# ------------------------------------------------------------------------------------------------ command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        choices=model_kinds(),
        default=None,
        help="emulator kind (default: the config's model.kind, graph)",
    )
    parser.add_argument("--store", required=True, help="canonical Zarr store (path or fsspec URL)")
    parser.add_argument("--out", required=True, help="run directory (logs, checkpoints, model.safetensors)")
    parser.add_argument(
        "--config",
        default=None,
        help="training config YAML (default: pipeline/configs/demo_KIND.yaml, the demo's config of --model)",
    )
    parser.add_argument("--max-steps", type=int, default=None, help="override trainer.max_steps")
    parser.add_argument("--devices", default="auto", help="devices per node (int or 'auto')")
    parser.add_argument("--num-nodes", type=int, default=1)
    parser.add_argument("--strategy", choices=("ddp", "fsdp", "auto"), default="auto")
    parser.add_argument("--accelerator", choices=("cpu", "gpu", "auto"), default="auto")
    parser.add_argument(
        "--resume",
        default=None,
        help="Lightning checkpoint to continue from (default: --out's own checkpoints/last.ckpt when --out holds "
        "this run, interrupted)",
    )
    parser.add_argument("--seed", type=int, default=None, help="override trainer.seed")
    parser.add_argument("--num-workers", type=int, default=None, help="override data.num_workers")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or messages")


def run(args: argparse.Namespace) -> int:
    config = TrainConfig.from_yaml(args.config or default_config_path(args.model or "graph"))
    changes: dict[str, dict[str, Any]] = {}
    if args.model:
        changes["model"] = {"kind": args.model}
    if args.max_steps is not None:
        changes.setdefault("trainer", {})["max_steps"] = args.max_steps
    if args.seed is not None:
        changes.setdefault("trainer", {})["seed"] = args.seed
    if args.num_workers is not None:
        changes["data"] = {"num_workers": args.num_workers}
    if changes:
        config = config.override(changes, where=f"{args.config or 'defaults'} with the command-line options")
    result = train(
        config,
        store=args.store,
        out=args.out,
        devices=args.devices,
        accelerator=args.accelerator,
        strategy=args.strategy,
        num_nodes=args.num_nodes,
        resume=args.resume,
        progress=not args.quiet,
    )
    if rank_zero_only.rank == 0 and not result.already_trained:
        how = "least squares on the training period" if config.model.kind == "linear" else f"{result.steps} steps"
        print(f"wxemu train: wrote {result.checkpoint} ({how})", flush=True)
    return 0
