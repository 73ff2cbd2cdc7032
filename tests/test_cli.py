"""The `wxemu` dispatcher: stages listed, per-stage help, version, user errors as exit code 2."""

from __future__ import annotations

import pytest

from data_catalog.catalog import is_catalog_name
from workflows.cli import STAGES, main


def test_help_lists_every_stage_and_each_stage_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert all(stage in out for stage in STAGES)
    for stage in STAGES:
        with pytest.raises(SystemExit) as exc:
            main([stage, "--help"])
        assert exc.value.code == 0
        assert f"usage: wxemu {stage}" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("wxemu ")


def test_user_error_is_exit_code_2_naming_the_file(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.zarr"
    rc = main(["verify", "--forecast", str(missing), "--truth", str(missing), "--out", str(tmp_path / "s.zarr")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("wxemu verify: error: ") and "nope.zarr" in err
    assert not (tmp_path / "s.zarr").exists()


def test_catalog_names_are_told_from_paths(tmp_path) -> None:
    assert is_catalog_name("era5-t2m-uk-2019-03")
    assert not is_catalog_name("no-such-entry")
    assert not is_catalog_name(str(tmp_path / "x.grib")) and not is_catalog_name("gs://bucket/store.zarr")
