"""Flat YAML config files: one reader and one unknown-key check for every stage's config."""

from __future__ import annotations

import pytest

from data_catalog.config_files import read_mapping
from data_catalog.errors import ConfigError
from pipeline.dashboard import DashboardConfig
from pipeline.explain import ExplainConfig
from pipeline.verification import VerifyConfig


def test_bad_files_are_named_with_the_problem(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"verify config .*missing\.yaml: cannot read it"):
        read_mapping(tmp_path / "missing.yaml", "verify config")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        read_mapping(tmp_path / "bad.yaml", "verify config")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: expected a mapping of keys to values, got list"):
        read_mapping(tmp_path / "list.yaml", "verify config")
    (tmp_path / "empty.yaml").write_text("")
    assert read_mapping(tmp_path / "empty.yaml", "verify config") == {}


@pytest.mark.parametrize(
    ("cls", "values"),
    [
        (VerifyConfig, {"forecasts": ["f.zarr"], "truth": "t.zarr"}),
        (DashboardConfig, {"scores": ["s.zarr"]}),
        (ExplainConfig, {"checkpoint": "run", "store": "s.zarr", "init": "2019-03-25T00"}),
    ],
)
def test_every_stage_config_reads_yaml_and_names_unknown_keys(tmp_path, cls, values) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in values.items()))
    assert isinstance(cls.from_yaml(path), cls)
    path.write_text(path.read_text() + "colour: red\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['colour'\]"):
        cls.from_yaml(path)
