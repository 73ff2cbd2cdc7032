"""The canonical store's readers, completion marking and writing helpers (synthetic stores)."""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from data_catalog import store
from data_catalog import store_protocol as sp
from data_catalog.errors import IncompleteStoreError


def _canonical(nt: int = 6) -> xr.Dataset:
    rng = np.random.default_rng(0)
    time = pd.date_range("2020-01-01", periods=nt, freq="6h").values
    lat, lon, lev = np.array([-45.0, 0.0, 45.0]), np.array([0.0, 90.0, 180.0, 270.0]), np.array([500, 850])
    return xr.Dataset(
        {
            "temperature": (("time", "level", "latitude", "longitude"), rng.normal(280, 5, (nt, 2, 3, 4)).astype("f4")),
            "2m_temperature": (("time", "latitude", "longitude"), rng.normal(285, 5, (nt, 3, 4)).astype("f4")),
            "land_sea_mask": (("latitude", "longitude"), rng.uniform(0, 1, (3, 4)).astype("f4")),
        },
        coords={"time": time, "level": lev, "latitude": lat, "longitude": lon},
    )


def _lazy(ds: xr.Dataset) -> xr.Dataset:
    out = ds.copy()
    for v in store.time_variables(ds):
        out[v] = (ds[v].dims, da.zeros(ds[v].shape, dtype="f4", chunks=(1,) + ds[v].shape[1:]))
    return out


def test_channel_names_order_levels_and_static_excluded() -> None:
    ds = _canonical().isel(level=[1, 0])  # levels descending in the dataset: channels still ascending
    assert store.channel_names(ds) == ["temperature/500", "temperature/850", "2m_temperature"]


def test_create_write_complete_roundtrip(tmp_path) -> None:
    ds = _canonical()
    path = str(tmp_path / "s.zarr")
    store.create_store(path, _lazy(ds), attrs={"wxemu_recipe": {"command": "wxemu ingest x --out s.zarr"}})
    assert not store.is_complete(path)
    with pytest.raises(IncompleteStoreError, match=r"s\.zarr.*re-run the same ingest command.*wxemu ingest x"):
        store.open_store(path)
    with pytest.raises(IncompleteStoreError):
        store.open_stats(path)
    for start in range(0, 6, 2):
        store.write_steps(path, {v: ds[v].values[start : start + 2] for v in store.time_variables(ds)}, start)
        sp.mark_block_done(path, start // 2)
    assert sp.blocks_done(path) == {0, 1, 2}
    store.write_group(
        path,
        "stats",
        xr.Dataset(
            {"temperature": (("stat", "level"), np.ones((4, 2)))},
            coords={"stat": list(store.STAT_NAMES), "level": [500, 850]},
        ),
    )
    store.mark_complete(path)
    assert store.is_complete(path)
    assert sp.blocks_done(path) == set()
    out = store.open_store(path)
    assert out["temperature"].chunks[0] == (1,) * 6
    assert out["temperature"].dtype == np.float32
    xr.testing.assert_identical(out.drop_attrs(), ds)
    meta = json.loads((tmp_path / "s.zarr" / "temperature" / "zarr.json").read_text())
    assert meta["codecs"][-1]["name"] == "blosc" and meta["codecs"][-1]["configuration"]["cname"] == "lz4"
    assert "consolidated_metadata" in json.loads((tmp_path / "s.zarr" / "zarr.json").read_text())
    stats = store.open_stats(path)
    assert list(stats["stat"].values) == list(store.STAT_NAMES)


def test_create_and_complete_do_not_scale_with_the_number_of_chunks(tmp_path, monkeypatch) -> None:
    """Creating a store builds no per-chunk work (its placeholders are one dask chunk each, whatever the Zarr
    chunking), and completing one never lists its keys (an FSMap's truth value is its length: every chunk of
    the store, on an object store too). Both once grew with the record: 4 s and 2.7 s for a year of hourly steps."""
    import fsspec

    ds = _canonical(nt=48)
    path = str(tmp_path / "s.zarr")
    seen = {}
    to_zarr = xr.Dataset.to_zarr

    def spy(self, *a, **k):
        seen.update({n: self[n].data.numblocks for n in store.time_variables(self) if self[n].chunks})
        return to_zarr(self, *a, **k)

    monkeypatch.setattr(xr.Dataset, "to_zarr", spy)
    store.create_store(path, _lazy(ds), attrs={})
    assert seen == {"temperature": (1, 1, 1, 1), "2m_temperature": (1, 1, 1)}
    meta = json.loads((tmp_path / "s.zarr" / "temperature" / "zarr.json").read_text())
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [1, 2, 3, 4]  # the store is still one step a chunk
    store.write_steps(path, {v: ds[v].values for v in store.time_variables(ds)}, 0)
    sp.mark_block_done(path, 0)

    def no_listing(self):
        raise AssertionError("the store's keys were listed")

    monkeypatch.setattr(fsspec.FSMap, "__len__", no_listing)
    store.mark_complete(path)
    assert store.is_complete(path) and sp.blocks_done(path) == set()


def test_extend_time_keeps_old_chunks(tmp_path) -> None:
    ds = _canonical(8)
    path = str(tmp_path / "s.zarr")
    first = ds.isel(time=slice(0, 5))
    store.create_store(path, _lazy(first), attrs={})
    store.write_steps(path, {v: first[v].values for v in store.time_variables(ds)}, 0)
    chunk = tmp_path / "s.zarr" / "temperature" / "c" / "0" / "0" / "0" / "0"
    before = (chunk.read_bytes(), chunk.stat().st_mtime_ns)
    start = store.extend_time(path, ds["time"].values[5:])
    assert start == 5
    store.write_steps(path, {v: ds[v].values[5:] for v in store.time_variables(ds)}, 5)
    store.mark_complete(path)
    assert (chunk.read_bytes(), chunk.stat().st_mtime_ns) == before
    xr.testing.assert_identical(store.open_store(path).drop_attrs(), ds)


def test_memory_url_store() -> None:
    ds = _canonical(2)
    url = "memory://wxemu-test/s.zarr"
    store.create_store(url, _lazy(ds), attrs={})
    store.write_steps(url, {v: ds[v].values for v in store.time_variables(ds)}, 0)
    with pytest.raises(IncompleteStoreError, match="memory://"):
        store.open_store(url)
    store.mark_complete(url)
    xr.testing.assert_identical(store.open_store(url).load().drop_attrs(), ds)
    store.remove_store(url)
    assert not store.store_exists(url)


def test_block_writes_use_zarrs_and_leave_the_same_bytes_as_zarr_python(tmp_path) -> None:
    """The ingest's writes go through the zarrs codec pipeline (only the arrays opened for writing: zarr's global
    config is restored), and the chunks it writes are byte for byte those zarr-python writes."""
    import zarr

    ds = _canonical()
    names = store.time_variables(ds)
    default = zarr.config.get("codec_pipeline.path")
    paths = {}
    for name, fast in (("fast", True), ("plain", False)):
        path = str(tmp_path / f"{name}.zarr")
        store.create_store(path, _lazy(ds), attrs={})
        if fast:
            arrays = store._writable_arrays(path, None, None, tuple(names))
            assert {type(a._async_array.codec_pipeline).__name__ for a in arrays.values()} == {"ZarrsCodecPipeline"}
            store.write_steps(path, {v: ds[v].values for v in names}, 0)
        else:
            root = zarr.open_group(path, mode="r+")
            assert type(root[names[0]]._async_array.codec_pipeline).__name__ == "BatchedCodecPipeline"
            for v in names:
                root[v][:] = ds[v].values
        paths[name] = tmp_path / f"{name}.zarr"
    assert zarr.config.get("codec_pipeline.path") == default
    for v in names:
        fast = sorted((paths["fast"] / v / "c").rglob("*"))
        plain = sorted((paths["plain"] / v / "c").rglob("*"))
        assert [p.relative_to(paths["fast"]) for p in fast] == [p.relative_to(paths["plain"]) for p in plain]
        chunks = [p for p in fast if p.is_file()]
        assert len(chunks) == ds.sizes["time"]
        for p in chunks:
            assert p.read_bytes() == (paths["plain"] / p.relative_to(paths["fast"])).read_bytes()
