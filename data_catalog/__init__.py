"""wxemu data_catalog: named datasets, source readers and the canonical (WeatherBench2/CF) mapping.

The public functions are imported lazily (data_catalog.exports) so that ``import data_catalog.errors`` (done by
the ``wxemu`` dispatcher) stays fast:

* ``open_source``, ``open_sources`` (``data_catalog.readers``): open NetCDF/GRIB/Zarr as the source names things;
* ``to_canonical`` (``data_catalog.canonical``) and ``to_canonical_forecast`` (``data_catalog.forecasts``);
* ``load_catalog``, ``get_entry``, ``open_dataset`` (``data_catalog.catalog``): named catalog entries;
* ``sample_path``, ``data_dir`` (``data_catalog.samples``): the bundled real sample files;
* ``ingest``, ``IngestConfig``, ``IngestResult`` (``data_catalog.ingestion``): sources -> a canonical store.
"""

from __future__ import annotations

from data_catalog.exports import lazy_exports

_EXPORTS = {
    "open_source": "data_catalog.readers",
    "open_sources": "data_catalog.readers",
    "to_canonical": "data_catalog.canonical",
    "to_canonical_forecast": "data_catalog.forecasts",
    "load_catalog": "data_catalog.catalog",
    "get_entry": "data_catalog.catalog",
    "open_dataset": "data_catalog.catalog",
    "sample_path": "data_catalog.samples",
    "data_dir": "data_catalog.samples",
    "ingest": "data_catalog.ingestion",
    "IngestConfig": "data_catalog.ingestion",
    "IngestResult": "data_catalog.ingestion",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
