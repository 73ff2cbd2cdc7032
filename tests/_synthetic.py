"""Re-exports of :mod:`data_catalog.testing` for the tests that import them from here, and
:func:`cached_uk_store`: the UK sample ingested once per test process, in a temporary directory removed at exit."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from data_catalog.samples import sample_path
from data_catalog.testing import (  # noqa: F401 - re-exported
    UK_SAMPLE,
    compute_climatology,
    compute_stats,
    ingest_uk_sample,
    synthetic_dataset,
    uk_sample_dataset,
    write_canonical_store,
)

UK_GRIB = Path(sample_path(UK_SAMPLE))


@functools.cache
def cached_uk_store() -> Path:
    """:func:`data_catalog.testing.ingest_uk_sample` once per test process (removed when the process exits)."""
    tmp = tempfile.mkdtemp(prefix="wxemu-uk-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    return ingest_uk_sample(Path(tmp) / "store.zarr")
