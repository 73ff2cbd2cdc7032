"""Paths of the Met Office sample files that the ``iris-sample-data`` package installs (extra ``metoffice``)."""

from __future__ import annotations

import glob
import os

from data_catalog.errors import InputDataError


def iris_sample_dir() -> str:
    """The directory of iris-sample-data's files; InputDataError when the package is not installed."""
    try:
        import iris_sample_data
    except ImportError:
        raise InputDataError("iris-sample-data is not installed: pip install 'wxemu[metoffice]'") from None
    return str(iris_sample_data.path)


def iris_sample_files(pattern: str = "**/*.pp") -> list[str]:
    """Sorted sample files matching ``pattern`` (a glob relative to ``iris_sample_dir()``)."""
    return sorted(glob.glob(os.path.join(iris_sample_dir(), pattern), recursive=True))
