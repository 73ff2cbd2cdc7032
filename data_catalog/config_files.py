"""Reading flat YAML config files into the stages' config dataclasses: one way, one set of errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from data_catalog.errors import ConfigError


def read_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The mapping a YAML config file holds (empty file: ``{}``); ConfigError naming ``what`` and the file when
    it cannot be read, is not YAML, or is not a mapping."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot read it ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path}: expected a mapping of keys to values, got {type(data).__name__}")
    return data


def check_fields(cls: type, values: Mapping[str, Any], what: str) -> None:
    """ConfigError naming the keys of ``values`` that are not fields of the dataclass ``cls``."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, values)) - known)
    if unknown:
        raise ConfigError(f"{what}: unknown key(s) {unknown}; known: {sorted(known)}")
