"""Training windows read straight from the canonical Zarr store (never loaded into memory).

A sample ("window") is identified by ``(anchor, stride)``: time index ``anchor`` of the store and a step of
``stride`` store time steps (``dt = stride * store step`` hours). After :func:`assemble_windows` it holds

- ``inputs``   (history, C, H, W)  normalised states at anchor - (history-1)*stride .. anchor
- ``targets``  (k, C, H, W)        normalised states at anchor + stride .. anchor + k*stride
- ``forcings`` (k, F, H, W)        forcings (models.forcings) valid at each target time
- ``dt_hours`` float               the step size; ``index`` the anchor (for logging/tests)

Batches are collated inside the dataset (``__getitems__``): all windows of a batch share one stride, and the
time indices they need are read once per variable with one zarr selection (zarr-python directly, chunks fetched
concurrently, decoded straight into the batch array). The loader ships each distinct time once, in physical
units, with the window index table; normalisation and the gather into (inputs, targets) run on the accelerator
(:func:`assemble_windows`, called from the LightningModule's ``on_after_batch_transfer``). With
``contiguous_batches`` the sampler forms each batch from
consecutive anchors, so a batch of B one-step windows reads B+1 time chunks instead of 2B. Under DDP each rank
takes every world_size-th batch of the same shuffled list (equal counts on every rank).

Workers are started with ``multiprocessing_context="spawn"`` (docs/conventions.md: forked workers hang once the zarr
thread pool runs in the parent) and are persistent; each worker opens the zarr arrays once.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from data_catalog.errors import WxemuError
from models.forcings import YESTERDAY_HOURS
from pipeline.normalization import ChannelStats, difference_stats
from pipeline.store_reader import (
    ForcingProvider,
    StoreLayout,
    StoreReader,
    default_forcing_spec,
    read_layout,
    store_channel_stats,
    stride_for,
)

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ statistics
def add_step_stats(
    stats: ChannelStats,
    layout: StoreLayout,
    step_hours: Sequence[float],
    index_range: tuple[int, int],
    n_samples: int,
    seed: int = 0,
) -> ChannelStats:
    """Estimate mean/std of dt-hour differences for each step not in ``stats`` on a time range of the store.

    Uses ``n_samples`` evenly spread start times of the range (deterministic given ``seed``).
    """
    reader = StoreReader(layout)
    rng = np.random.default_rng(seed)
    for dt in step_hours:
        if float(dt) in stats.diff_std:
            continue
        stride = stride_for(dt, layout)
        i0, i1 = index_range
        starts = np.arange(i0, i1 - stride)
        if len(starts) < 2:
            raise WxemuError(f"{layout.path}: the training range is too short for {dt} h differences")
        pick = np.sort(rng.choice(starts, size=min(n_samples, len(starts)), replace=False))
        now = reader.read(pick)
        later = reader.read(pick + stride)
        mean, std = difference_stats(now, later)
        stats.diff_mean[float(dt)] = mean
        stats.diff_std[float(dt)] = np.where(std > 1e-12, std, 1.0)
    return stats


# ------------------------------------------------------------------------------------------------ dataset
class WindowDataset(Dataset):
    """Windows ``(anchor, stride)`` of one split; see the module docstring for the sample layout."""

    def __init__(
        self, layout: StoreLayout, stats: ChannelStats, forcing_spec: Any, history: int, rollout_steps: int
    ) -> None:
        self.layout = layout
        self.stats = stats
        self.forcing_spec = forcing_spec
        self.history = int(history)
        self.rollout_steps = int(rollout_steps)
        self._reader: StoreReader | None = None
        self._forcings: ForcingProvider | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_reader"] = None
        state["_forcings"] = None
        return state

    def _ensure_open(self) -> None:
        if self._reader is None:
            self._reader = StoreReader(self.layout)
            self._forcings = ForcingProvider(self.layout, self.forcing_spec, self.stats)

    def valid_anchors(self, index_range: tuple[int, int], stride: int) -> np.ndarray:
        """Anchors whose whole window (history and k targets at ``stride``) lies in [i0, i1)."""
        i0, i1 = index_range
        first = i0 + (self.history - 1) * stride
        if getattr(self.forcing_spec, "yesterday_change", ()):  # the first target's yesterday must be in the store
            first = max(first, stride_for(YESTERDAY_HOURS, self.layout) + 1 - stride)
        last = i1 - 1 - self.rollout_steps * stride
        return np.arange(first, last + 1) if last >= first else np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:  # pragma: no cover - samplers define the epoch
        return len(self.layout.times)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        """One window as a batch of one (``states``/``window`` layout; see :func:`assemble_windows`)."""
        return self.__getitems__([key])

    def __getitems__(self, keys: Sequence[tuple[int, int]]) -> dict[str, torch.Tensor]:
        """Read and collate a batch of windows that share one stride (physical units; the module normalises and
        gathers them on the accelerator with :func:`assemble_windows`)."""
        self._ensure_open()
        assert self._reader is not None and self._forcings is not None
        anchors = np.asarray([int(k[0]) for k in keys], dtype=np.int64)
        strides = {int(k[1]) for k in keys}
        if len(strides) != 1:
            raise ValueError(f"a batch must share one stride, got {sorted(strides)}")
        stride = strides.pop()
        h, k = self.history, self.rollout_steps
        offsets = np.arange(-(h - 1), k + 1) * stride  # (h + k,)
        idx = anchors[:, None] + offsets[None, :]  # (B, h + k)
        block, inverse = self._reader.read_unique(idx)  # each time read once, physical units
        target_times = self.layout.times[idx[:, h:].ravel()]
        forcings = self._forcings(target_times).reshape(len(anchors), k, -1, *block.shape[-2:])
        dt = stride * self.layout.step_hours
        return {
            "states": torch.from_numpy(block),
            "window": torch.from_numpy(inverse),
            "forcings": torch.from_numpy(np.ascontiguousarray(forcings, dtype=np.float32)),
            "dt_hours": torch.full((len(anchors),), dt, dtype=torch.float32),
            "index": torch.from_numpy(anchors),
        }


def assemble_windows(batch: dict[str, torch.Tensor], stats: ChannelStats, history: int) -> dict[str, torch.Tensor]:
    """Turn a loader batch into model windows, on whatever device the batch is on (normally the accelerator).

    The loader ships each distinct time once, in physical units: ``states`` (U, C, H, W) and ``window`` (B, h+k)
    indices into it. This normalises ``states`` with the store's mean/std and gathers ``inputs`` (B, h, C, H, W)
    and ``targets`` (B, k, C, H, W); other keys pass through.
    """
    if "states" not in batch:
        return batch
    states = batch["states"].float()
    mean = torch.as_tensor(stats.mean, dtype=states.dtype, device=states.device)[None, :, None, None]
    std = torch.as_tensor(stats.std, dtype=states.dtype, device=states.device)[None, :, None, None]
    norm = (states - mean) / std
    win = batch["window"].long()
    out = {k: v for k, v in batch.items() if k not in ("states", "window")}
    out["inputs"] = norm[win[:, :history]]
    out["targets"] = norm[win[:, history:]]
    return out


def collate_batch(batch: Any) -> Any:
    """The dataset collates itself (``__getitems__``); this passes the batch through (picklable for spawn)."""
    return batch


# ------------------------------------------------------------------------------------------------ sampler
class WindowBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields batches of ``(anchor, stride)`` keys, one stride per batch, this rank's share only.

    Each epoch: for every stride, the valid anchors are cut into batches (consecutive anchors from a random
    offset when ``contiguous``, else a random partition); all batches of all strides are shuffled with
    ``seed + epoch``; rank r takes batches r, r + world, ... of a list padded (by repeating from its start) to a
    multiple of ``world_size`` so every rank runs the same number of steps.
    """

    def __init__(
        self,
        anchors_by_stride: dict[int, np.ndarray],
        batch_size: int,
        *,
        shuffle: bool = True,
        contiguous: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        self.anchors_by_stride = {int(s): np.asarray(a, dtype=np.int64) for s, a in anchors_by_stride.items()}
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.contiguous = contiguous
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _all_batches(self) -> list[list[tuple[int, int]]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        batches: list[list[tuple[int, int]]] = []
        for stride, anchors in sorted(self.anchors_by_stride.items()):
            if len(anchors) == 0:
                continue
            if self.shuffle and self.contiguous:
                offset = int(rng.integers(0, self.batch_size))
                cuts = list(range(offset, len(anchors), self.batch_size))
                groups = [anchors[:offset]] if offset else []
                groups += [anchors[c : c + self.batch_size] for c in cuts]
            else:
                order = rng.permutation(anchors) if self.shuffle else anchors
                groups = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
            for g in groups:
                if len(g) == 0 or (self.drop_last and len(g) < self.batch_size):
                    continue
                batches.append([(int(a), stride) for a in np.sort(g)])
        if self.shuffle:
            perm = rng.permutation(len(batches))
            batches = [batches[i] for i in perm]
        return batches

    def _rank_batches(self) -> list[list[tuple[int, int]]]:
        batches = self._all_batches()
        if not batches:
            return []
        n = math.ceil(len(batches) / self.world_size) * self.world_size
        batches = (batches * math.ceil(n / len(batches)))[:n]
        return batches[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        yield from self._rank_batches()

    def __len__(self) -> int:
        return len(self._rank_batches())


# ------------------------------------------------------------------------------------------------ datamodule
class WindowDataModule(pl.LightningDataModule):
    """LightningDataModule over a canonical store. Splits by date ranges; rank/world taken from the trainer.

    ``setup()`` reads the layout, the store stats and estimates difference statistics of the step sizes that
    the store lacks on the training split (the same on every rank: a fixed seed).
    """

    def __init__(
        self,
        store: str,
        *,
        train: tuple[str, str],
        val: tuple[str, str],
        test: tuple[str, str],
        history: int = 1,
        rollout_steps: int = 1,
        step_hours: Sequence[float] = (1.0,),
        batch_size: int = 8,
        num_workers: int = 0,
        prefetch_factor: int = 2,
        contiguous: bool = True,
        diff_stats_samples: int = 128,
        storage_options: dict[str, Any] | None = None,
        seed: int = 0,
        forcing_spec: Any = None,
        climatology_forcing: bool = False,
        yesterday_change: bool = False,
        index_log_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.store = str(store)
        self.ranges = {"train": train, "val": val, "test": test}
        self.history = history
        self.rollout_steps = rollout_steps
        self.step_hours = [float(s) for s in step_hours]
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.contiguous = contiguous
        self.diff_stats_samples = diff_stats_samples
        self.storage_options = dict(storage_options or {})
        self.seed = seed
        self.forcing_spec = forcing_spec
        self.climatology_forcing = climatology_forcing
        self.yesterday_change = yesterday_change
        self.index_log_dir = index_log_dir
        self.layout: StoreLayout | None = None
        self.stats: ChannelStats | None = None
        self.dataset: WindowDataset | None = None

    def prepare(self) -> None:
        """Read layout and stats (idempotent; called by ``setup`` and by ``wxemu train`` before the model)."""
        if self.layout is not None:
            return
        self.layout = read_layout(self.store, self.storage_options)
        if self.forcing_spec is None:
            self.forcing_spec = default_forcing_spec(
                self.layout, climatology=self.climatology_forcing, yesterday_change=self.yesterday_change
            )
        self._check_ranges_in_store()
        stats = store_channel_stats(self.layout)
        train_rng = self.split_range("train")
        self.stats = add_step_stats(
            stats, self.layout, self.step_hours, train_rng, self.diff_stats_samples, seed=self.seed
        )
        self.dataset = WindowDataset(self.layout, self.stats, self.forcing_spec, self.history, self.rollout_steps)
        for split in ("train", "val"):
            if not any(len(a) for a in self.anchors(split).values()):
                lo, hi = self.ranges[split]
                raise WxemuError(
                    f"{self.store}: the {split} range {lo} .. {hi} holds no complete window "
                    f"(history {self.history}, {self.rollout_steps} rollout steps of "
                    f"{self.step_hours} h)"
                )

    def _check_ranges_in_store(self) -> None:
        """WxemuError naming the split when a date of a split is not a date or its range misses the store's times."""
        assert self.layout is not None
        first, last = pd.Timestamp(self.layout.times[0]), pd.Timestamp(self.layout.times[-1])
        for split in ("train", "val"):
            lo, hi = self.ranges[split]
            try:
                start, end = pd.Timestamp(lo), pd.Timestamp(hi)
            except (ValueError, TypeError) as exc:
                raise WxemuError(
                    f"{self.store}: the {split} range {lo} .. {hi} is not a pair of dates ({exc})"
                ) from None
            if end < first or start > last:
                raise WxemuError(
                    f"{self.store}: the {split} range {lo} .. {hi} lies outside the store's times "
                    f"{first} .. {last}; choose dates inside them (data.{split} of the training config)"
                )

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    def split_range(self, split: str) -> tuple[int, int]:
        assert self.layout is not None
        return self.layout.index_range(*self.ranges[split])

    def anchors(self, split: str) -> dict[int, np.ndarray]:
        """Valid anchors per stride of a split (validation/test use only the smallest step)."""
        assert self.layout is not None and self.dataset is not None
        steps = self.step_hours if split == "train" else self.step_hours[:1]
        rng = self.split_range(split)
        return {
            stride_for(dt, self.layout): self.dataset.valid_anchors(rng, stride_for(dt, self.layout)) for dt in steps
        }

    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return int(trainer.global_rank), int(trainer.world_size)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        assert self.dataset is not None
        rank, world = self._rank_world()
        sampler = WindowBatchSampler(
            self.anchors(split),
            self.batch_size,
            shuffle=shuffle,
            contiguous=self.contiguous,
            seed=self.seed,
            rank=rank,
            world_size=world,
        )
        kwargs: dict[str, Any] = {}
        if self.num_workers > 0:
            kwargs = {
                "multiprocessing_context": "spawn",
                "persistent_workers": True,
                "prefetch_factor": self.prefetch_factor,
            }
        return DataLoader(
            self.dataset,
            batch_sampler=sampler,
            collate_fn=collate_batch,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def log_indices(directory: str, rank: int, indices: Sequence[int]) -> None:
    """Append window anchors trained on by ``rank`` to ``directory/indices-rank{rank}.txt`` (tests, debugging)."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f"indices-rank{rank}.txt"), "a") as f:
        f.write(" ".join(str(int(i)) for i in indices) + "\n")
