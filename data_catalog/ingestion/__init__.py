"""`wxemu ingest`: sources (catalog entry or NetCDF/GRIB/Zarr files) -> the canonical Zarr store.

``from data_catalog.ingestion import ingest, IngestConfig`` is the API; docs/ingest.md the design. Modules, in the
order an ingest uses them: ``config`` (IngestConfig, IngestResult), ``checksums`` (source fingerprints, hashed
beside the writes), ``sources`` (open, map, combine, validate), ``blocks`` (time blocks: plan, write one),
``partials`` (statistics and climatology sums per block, combined in time order), ``executor`` (thread pool or
dask cluster, progress), ``climatology_write``, ``finish`` (statistics, climatology, provenance, complete),
``create`` and ``append`` (the two kinds of write), ``run`` (:func:`ingest`, under the store's writer lock),
``hooks`` (callbacks for tests and tools).

"""

from data_catalog.ingestion.checksums import file_fingerprint
from data_catalog.ingestion.config import IngestConfig, IngestResult, RunOptions
from data_catalog.ingestion.finish import KEPT_SUMS_ATTR
from data_catalog.ingestion.hooks import CRASH_ENV, IngestHooks, SimulatedCrash
from data_catalog.ingestion.run import ingest

__all__ = [
    "CRASH_ENV",
    "KEPT_SUMS_ATTR",
    "IngestConfig",
    "IngestHooks",
    "IngestResult",
    "RunOptions",
    "SimulatedCrash",
    "file_fingerprint",
    "ingest",
]
