"""pipeline.datamodule: windows read from real and synthetic canonical stores."""

from __future__ import annotations

import _synthetic
import numpy as np
import pytest
import torch
import xarray as xr

from pipeline.datamodule import WindowBatchSampler, WindowDataModule, WindowDataset, assemble_windows
from pipeline.store_reader import StoreReader, default_forcing_spec, read_layout, store_channel_stats


@pytest.fixture(scope="module")
def syn_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("syn") / "store.zarr"
    return str(_synthetic.write_canonical_store(_synthetic.synthetic_dataset(n_time=40, levels=(850, 500)), path))


@pytest.fixture(scope="module")
def uk_store() -> str:
    return str(_synthetic.cached_uk_store())


def test_layout_and_reader_match_xarray(syn_store: str) -> None:
    layout = read_layout(syn_store)
    assert layout.channel_names == ["2m_temperature", "temperature/500", "temperature/850"]
    assert list(layout.static) == ["land_sea_mask"] and layout.step_hours == 1.0
    ds = xr.open_zarr(syn_store)
    got = StoreReader(layout).read([5, 3, 5, 9])
    assert got.shape == (4, 3, 8, 12) and got.dtype == np.float32
    for row, t in enumerate([5, 3, 5, 9]):
        np.testing.assert_array_equal(got[row, 0], ds["2m_temperature"].isel(time=t).values)
        # levels are stored 850, 500 in this store; channels are ascending 500, 850
        np.testing.assert_array_equal(got[row, 1], ds["temperature"].isel(time=t).sel(level=500).values)
        np.testing.assert_array_equal(got[row, 2], ds["temperature"].isel(time=t).sel(level=850).values)


@pytest.mark.parametrize("history,k,stride", [(1, 1, 1), (2, 3, 1), (1, 2, 3)])
def test_window_contents(syn_store: str, history: int, k: int, stride: int) -> None:
    layout = read_layout(syn_store)
    stats = store_channel_stats(layout)
    ds_ = WindowDataset(layout, stats, default_forcing_spec(layout), history, k)
    reader = StoreReader(layout)
    anchors = [10, 11, 12, 20]
    raw = ds_.__getitems__([(a, stride) for a in anchors])
    # each distinct time is shipped once
    assert raw["states"].shape[0] == len({a + o * stride for a in anchors for o in range(-(history - 1), k + 1)})
    batch = assemble_windows(raw, stats, history)
    c, h, w = 3, 8, 12
    assert batch["inputs"].shape == (4, history, c, h, w)
    assert batch["targets"].shape == (4, k, c, h, w)
    assert batch["forcings"].shape[:2] == (4, k) and batch["forcings"].shape[-2:] == (h, w)
    assert torch.all(batch["dt_hours"] == stride) and batch["index"].tolist() == anchors
    mean, std = stats.mean[None, :, None, None], stats.std[None, :, None, None]
    for b, a in enumerate(anchors):
        want_in = (reader.read([a - (history - 1 - i) * stride for i in range(history)]) - mean) / std
        want_tg = (reader.read([a + (j + 1) * stride for j in range(k)]) - mean) / std
        np.testing.assert_allclose(batch["inputs"][b].numpy(), want_in, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(batch["targets"][b].numpy(), want_tg, rtol=1e-5, atol=1e-5)
    # forcings are functions of the target time: equal times give equal forcings
    if stride == 1 and k >= 2:
        np.testing.assert_array_equal(batch["forcings"][0, 1].numpy(), batch["forcings"][1, 0].numpy())
    with pytest.raises(ValueError, match="stride"):
        ds_.__getitems__([(10, 1), (11, 2)])


def test_sampler_partitions_ranks_and_is_seeded() -> None:
    anchors = {1: np.arange(0, 50), 3: np.arange(2, 40)}
    world = [WindowBatchSampler(anchors, 8, seed=3, rank=r, world_size=2) for r in range(2)]
    b0, b1 = list(world[0]), list(world[1])
    assert len(b0) == len(b1) == len(world[0])
    keys0 = {k for b in b0 for k in b}
    keys1 = {k for b in b1 for k in b}
    all_keys = {(int(a), s) for s, arr in anchors.items() for a in arr}
    assert keys0 | keys1 == all_keys  # every window is seen
    assert len(keys0 & keys1) <= 8  # only the padding batch may repeat
    for b in b0:
        strides = {s for _, s in b}
        assert len(strides) == 1
        a = [x for x, _ in b]
        assert a == list(range(a[0], a[0] + len(a)))  # contiguous anchors
    again = list(WindowBatchSampler(anchors, 8, seed=3, rank=0, world_size=2))
    assert again == b0
    world[0].set_epoch(1)
    assert list(world[0]) != b0


def test_datamodule_uk_sample_step_stats_and_spawn_workers(uk_store: str) -> None:
    dm = WindowDataModule(
        uk_store,
        train=("2019-03-01", "2019-03-21T23"),
        val=("2019-03-22", "2019-03-24T23"),
        test=("2019-03-25", "2019-03-31T23"),
        rollout_steps=2,
        step_hours=[1, 6],
        batch_size=4,
        num_workers=0,
    )
    dm.setup("fit")
    assert dm.layout.channel_names == ["2m_temperature"]
    assert dm.stats.step_hours == [1.0, 6.0]
    # 6-hourly 2 m temperature changes (diurnal cycle) are larger than hourly ones
    assert dm.stats.diff_std[6.0][0] > 2 * dm.stats.diff_std[1.0][0]
    train_anchors = dm.anchors("train")
    assert train_anchors[1].min() == 0 and train_anchors[1].max() == 21 * 24 - 1 - 2
    assert train_anchors[6].max() == 21 * 24 - 1 - 12
    val = dm.anchors("val")
    assert list(val) == [1] and val[1].min() == 21 * 24
    serial = next(iter(dm.val_dataloader()))
    dm.num_workers = 1
    loader = dm.val_dataloader()
    assert loader.multiprocessing_context.get_start_method() == "spawn" and loader.persistent_workers
    spawned = next(iter(loader))
    for key in ("states", "window", "forcings", "index"):
        torch.testing.assert_close(spawned[key], serial[key])
    serial = assemble_windows(serial, dm.stats, 1)
    # the first validation window starts at 2019-03-22T00 and is normalised with the store stats
    assert serial["index"][0].item() == 21 * 24
    assert abs(float(serial["inputs"].mean())) < 3


def test_empty_split_is_a_clear_error(syn_store: str) -> None:
    from data_catalog.errors import WxemuError

    dm = WindowDataModule(
        syn_store,
        train=("2020-01-01", "2020-01-01T10"),
        val=("2021-01-01", "2021-01-02"),
        test=("2021-01-01", "2021-01-02"),
    )
    with pytest.raises(WxemuError, match="val range"):
        dm.setup("fit")


def test_climatology_forcing_is_the_store_climatology_normalised(uk_store: str) -> None:
    from pipeline.store_reader import ClimatologyReader, ForcingProvider

    layout = read_layout(uk_store)
    stats = store_channel_stats(layout)
    spec = default_forcing_spec(layout, climatology=True)
    assert spec.climatology == ("2m_temperature",)
    times = layout.times[[30, 31, 400]]
    got = ForcingProvider(layout, spec, stats)(times)
    clim = xr.open_zarr(uk_store, group="climatology")["2m_temperature"]
    for row, t in enumerate(times):
        ts = np.datetime64(t, "h").astype(object)
        want = clim.sel(dayofyear=ts.timetuple().tm_yday, hour=ts.hour).values
        np.testing.assert_allclose(got[row, -1], (want - stats.mean[0]) / stats.std[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ClimatologyReader(layout)(times[-1:])[0, 0], want)  # physical units
    with pytest.raises(Exception, match="statistics"):
        ForcingProvider(layout, spec, None)


def test_climatology_outside_its_window_is_refused_naming_the_store(uk_store: str) -> None:
    from data_catalog.errors import WxemuError
    from pipeline.store_reader import ClimatologyReader

    layout = read_layout(uk_store)
    with pytest.raises(WxemuError, match="no value at 2019-07-01 06:00") as err:
        ClimatologyReader(layout)(np.array(["2019-07-01T06"], dtype="datetime64[ns]"))
    assert str(err.value).startswith(f"{layout.path}: ")
