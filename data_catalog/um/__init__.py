"""Met Office Unified Model output (PP files, fieldsfiles) read through iris; see docs/metoffice.md.

``open_um(paths)`` gives a source dataset in cfgrib's layout that ``canonical.to_canonical`` and
``forecasts.to_canonical_forecast`` map onto the canonical convention; ``is_um_file`` recognises the formats.
"""

from __future__ import annotations

from data_catalog.um.detect import PP_SUFFIXES, is_um_file, is_um_magic
from data_catalog.um.grid import RegularGrid
from data_catalog.um.reader import REGRID_CHOICES, REGRID_ENV, open_um
from data_catalog.um.samples import iris_sample_dir, iris_sample_files

__all__ = [
    "PP_SUFFIXES",
    "REGRID_CHOICES",
    "REGRID_ENV",
    "RegularGrid",
    "is_um_file",
    "is_um_magic",
    "open_um",
    "iris_sample_dir",
    "iris_sample_files",
]
