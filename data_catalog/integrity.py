"""Detect short and corrupt source files before (and while) they are read, naming the real problem.

* NetCDF3 (classic, 64-bit offset, CDF-5) gives no error on a short read: the netCDF library returns zeros and
  garbage for the missing bytes. :func:`netcdf3_expected_size` reads the header (the format is public: Unidata's
  "NetCDF Classic Format Specification") and returns the size it promises; no well-kept library exposes the data
  offsets, so the few lines that parse it live here.
* NetCDF4/HDF5: the superblock records the end-of-file address (:func:`hdf5_expected_size`); a shorter file is
  truncated (the HDF5 library itself only says "HDF error").
* Zarr chunks and NetCDF4/HDF5 chunks are checked as they are decoded: :func:`guard_reads` wraps each variable
  so that a chunk that cannot be decoded raises InputDataError naming the store, the variable and the region.

GRIB files are scanned message by message in ``readers.check_grib_messages``.
"""

from __future__ import annotations

import hashlib
import os
import struct
from typing import Any

import dask.array
import numpy as np
import xarray as xr

from data_catalog.errors import InputDataError

_NC_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}
_NC_DIMENSION, _NC_VARIABLE, _NC_ATTRIBUTE = 0x0A, 0x0B, 0x0C
_STREAMING = 0xFFFFFFFF
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class _Header:
    """A big-endian cursor over the first bytes of a NetCDF3 file."""

    def __init__(self, data: bytes, version: int) -> None:
        self.data, self.pos = data, 4
        self.wide = version == 5  # CDF-5: 64-bit counts

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise EOFError
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack(">Q", self.take(8))[0]

    def count(self) -> int:
        return self.u64() if self.wide else self.u32()

    def name(self) -> str:
        n = self.count()
        raw = self.take(n + (-n) % 4)[:n]
        return raw.decode("utf-8", "replace")

    def skip_attributes(self) -> None:
        tag, n = self.u32(), self.count()
        if tag not in (0, _NC_ATTRIBUTE):
            raise ValueError(f"bad attribute list tag {tag:#x}")
        for _ in range(n):
            self.name()
            nc_type, nelems = self.u32(), self.count()
            size = nelems * _NC_TYPE_SIZES.get(nc_type, 0)
            if nc_type not in _NC_TYPE_SIZES:
                raise ValueError(f"bad attribute type {nc_type}")
            self.take(size + (-size) % 4)


def _netcdf3_variables(data: bytes) -> tuple[int, list[tuple[str, bool, int, int]]]:
    """(numrecs, [(name, is a record variable, begin offset, data bytes per variable or per record)]) from the
    first bytes of a NetCDF3 file; EOFError when ``data`` ends inside the header, ValueError for garbage."""
    h = _Header(data, data[3])
    numrecs = h.count()
    tag, ndims = h.u32(), h.count()
    if tag not in (0, _NC_DIMENSION):
        raise ValueError(f"bad dimension list tag {tag:#x}")
    dims = []
    for _ in range(ndims):
        h.name()
        dims.append(h.count())
    h.skip_attributes()
    tag, nvars = h.u32(), h.count()
    if tag not in (0, _NC_VARIABLE):
        raise ValueError(f"bad variable list tag {tag:#x}")
    variables = []
    for _ in range(nvars):
        name = h.name()
        dimids = [h.count() for _ in range(h.count())]
        h.skip_attributes()
        nc_type, _vsize = h.u32(), h.count()  # recomputed from the shape: vsize saturates above 4 GiB
        begin = h.u32() if data[3] == 1 else h.u64()
        if nc_type not in _NC_TYPE_SIZES or any(d >= len(dims) for d in dimids):
            raise ValueError(f"variable {name!r}: bad type or dimension")
        record = bool(dimids) and dims[dimids[0]] == 0
        shape = [dims[d] for d in dimids[1:]] if record else [dims[d] for d in dimids]
        variables.append((name, record, begin, int(np.prod(shape, dtype=np.int64)) * _NC_TYPE_SIZES[nc_type]))
    return numrecs, variables


def netcdf3_expected_size(path: str) -> tuple[int, str] | None:
    """(bytes the header of NetCDF3 file ``path`` promises, the variable that ends last), or None when the file
    is not NetCDF3 or streams its records (numrecs unknown). Raises InputDataError for a header that cannot be
    parsed (cut inside the header, or garbage)."""
    with open(path, "rb") as f:
        magic = f.read(4)
        if magic[:3] != b"CDF" or magic[3] not in (1, 2, 5):
            return None
        n = 2**16  # headers are small: read more only when one is not
        while True:
            f.seek(0)
            data = f.read(n)
            try:
                numrecs, variables = _netcdf3_variables(data)
                break
            except EOFError:
                if len(data) < n:  # the whole file was read: it ends inside its header
                    raise InputDataError(
                        f"{path}: truncated or corrupt NetCDF3 file: it ends inside the header"
                    ) from None
                n *= 16
            except ValueError as exc:
                raise InputDataError(
                    f"{path}: truncated or corrupt NetCDF3 file: the header is corrupt ({exc})"
                ) from None
    if numrecs == _STREAMING:
        return None
    records = [v for v in variables if v[1]]
    recsize = records[0][3] if len(records) == 1 else sum(size + (-size) % 4 for *_, size in records)
    expected, last = 0, ""
    for name, record, begin, nbytes in variables:
        end = begin + nbytes if not record else (begin + (numrecs - 1) * recsize + nbytes if numrecs else 0)
        if end > expected:
            expected, last = end, name
    return expected, last


def hdf5_expected_size(path: str) -> int | None:
    """The end-of-file address an HDF5 (NetCDF4) file's superblock records, or None when ``path`` is not HDF5 or
    its superblock version is unknown. The superblock is searched at 0, 512, 1024, ... (a user block)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        base = 0
        while base < size:
            f.seek(base)
            if f.read(8) == _HDF5_SIGNATURE:
                break
            base = 512 if base == 0 else base * 2
        else:
            return None
        block = f.read(96)
    version = block[0]
    if version in (0, 1):
        width = block[5]
        at = 16 + (4 if version == 1 else 0) + 2 * width  # after flags (and v1's indexed storage K): base, free
    elif version in (2, 3):
        width = block[1]
        at = 4 + 2 * width  # after version, sizes, flags: base address, extension address
    else:
        return None
    if width not in (2, 4, 8) or at + width > len(block):
        return None
    eof = int.from_bytes(block[at : at + width], "little")
    return base + eof


def check_file_size(path: str, source: str | None = None) -> None:
    """Raise InputDataError when local NetCDF3 or NetCDF4/HDF5 file ``path`` is shorter than its header says."""
    source = source or path
    actual = os.path.getsize(path)
    nc3 = netcdf3_expected_size(path)
    if nc3 is not None:
        expected, last = nc3
        if actual < expected:
            raise InputDataError(
                f"{source}: truncated NetCDF3 file: its header promises {expected} bytes (variable {last!r} ends "
                f"there) but the file has {actual} ({100 * actual / expected:.0f}%); download or copy it again"
            )
        return
    expected = hdf5_expected_size(path)
    if expected is not None and actual < expected:
        raise InputDataError(
            f"{source}: truncated NetCDF4/HDF5 file: its superblock records {expected} bytes but the file has "
            f"{actual} ({100 * actual / expected:.0f}%); download or copy it again"
        )


class _GuardedArray:
    """Array-like over one lazily indexed xarray variable: reads raise InputDataError naming the region."""

    def __init__(self, variable: xr.Variable, source: str, name: str, what: str) -> None:
        self.variable, self.source, self.name, self.what = variable, source, name, what
        self.shape, self.dtype, self.ndim = variable.shape, variable.dtype, variable.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self.variable[key].values)
        except InputDataError:
            raise
        except Exception as exc:
            where = ", ".join(
                f"{d}[{k.start or 0}:{k.stop if k.stop is not None else n}]" if isinstance(k, slice) else f"{d}={k}"
                for d, k, n in zip(self.variable.dims, key if isinstance(key, tuple) else (key,), self.shape)
            )
            raise InputDataError(
                f"{self.source}: corrupt or truncated {self.what}: variable {self.name!r} at {where} cannot be "
                f"decoded ({type(exc).__name__}: {str(exc)[:200]})"
            ) from None


def guard_reads(lazy: xr.Dataset, source: str, what: str) -> xr.Dataset:
    """``lazy`` (opened with ``chunks=None``: lazily indexed, not dask) with each data variable turned into a dask
    array of its preferred (on-disk) chunks whose reads raise InputDataError naming ``source``, the variable and
    the region when a chunk cannot be decoded (``what``: e.g. "Zarr chunk")."""
    out = lazy.copy()
    for name, da in lazy.data_vars.items():
        preferred = da.encoding.get("preferred_chunks") or {}
        chunks = tuple(int(preferred.get(d, n)) or n for d, n in zip(da.dims, da.shape))
        token = hashlib.sha1(f"{source}|{name}|{da.shape}|{da.dtype}|{id(lazy)}".encode()).hexdigest()[:16]
        data = dask.array.from_array(
            _GuardedArray(da.variable, source, str(name), what),
            chunks=chunks,
            name=f"wxemu-read-{name}-{token}",
            asarray=False,
            meta=np.empty((0,) * da.ndim, dtype=da.dtype),
        )
        out[name] = da.copy(data=data)
    return out
