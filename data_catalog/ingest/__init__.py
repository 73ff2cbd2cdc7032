"""`wxemu ingest`: sources (catalog entry or NetCDF/GRIB/Zarr files) -> the canonical Zarr store.

``from data_catalog.ingest import ingest, IngestConfig`` is the API; docs/ingest.md the design. Modules, in the
order an ingest uses them: ``config`` (IngestConfig, IngestResult), ``checksums`` (source fingerprints, hashed
beside the writes), ``sources`` (open, map, combine, validate), ``blocks`` (time blocks: plan, write one),
``partials`` (statistics and climatology sums per block, combined in time order), ``executor`` (thread pool or
dask cluster, progress), ``climatology_write``, ``finish`` (statistics, climatology, provenance, complete),
``create`` and ``append`` (the two kinds of write), ``run`` (:func:`ingest`, under the store's writer lock),
``hooks`` (callbacks for tests and tools).

The package is also callable as :func:`ingest` itself: ``data_catalog.ingest`` names both this package and the
function the package ``data_catalog`` exports (``from data_catalog import ingest``), and which of the two that
attribute holds depends on import order; calling either runs the ingest.
"""

import sys
import types

from data_catalog.ingest.checksums import file_fingerprint
from data_catalog.ingest.config import IngestConfig, IngestResult, RunOptions
from data_catalog.ingest.finish import KEPT_SUMS_ATTR
from data_catalog.ingest.hooks import CRASH_ENV, IngestHooks, SimulatedCrash
from data_catalog.ingest.run import ingest

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


class _IngestPackage(types.ModuleType):
    """This package's module type: calling it calls :func:`ingest`."""

    def __call__(self, cfg: IngestConfig, **kwargs) -> IngestResult:
        return ingest(cfg, **kwargs)


sys.modules[__name__].__class__ = _IngestPackage
