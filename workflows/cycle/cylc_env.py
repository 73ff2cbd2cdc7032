"""Running the Cylc workflows of the repository: where ``cylc`` is, a ``global.cylc`` for this machine, and
the environment a scheduler needs (also what the tests use).

Cylc 8 pins jinja2 3.0 and protobuf 4.24, which conflict with the project's environment, so it lives in its own
venv (``make cycle-install`` makes ``.venv-cylc``); the job scripts find it through the platform's ``cylc path``
(they run as login shells whose profile resets PATH) and find ``wxemu`` through the workflow's ``WXEMU_BIN``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from data_catalog.errors import WxemuError

REPO = Path(__file__).resolve().parents[2]
#: Environment variable naming the ``cylc`` executable to use (default: ``.venv-cylc/bin/cylc``, then PATH).
CYLC_ENV = "WXEMU_CYLC"


def workflow_dirs() -> list[Path]:
    """Every Cylc workflow source directory of the repository (those holding a ``flow.cylc``)."""
    return sorted(p.parent for p in (REPO / "workflows").rglob("flow.cylc"))


def find_cylc() -> str | None:
    """Path of the ``cylc`` executable: ``$WXEMU_CYLC``, the repo's ``.venv-cylc``, or PATH; None if absent."""
    for candidate in (os.environ.get(CYLC_ENV), str(REPO / ".venv-cylc" / "bin" / "cylc"), shutil.which("cylc")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def global_config(
    *, cylc_bin: str, slurm_platform: str | None = None, slurm_directives: Mapping[str, str] | None = None
) -> str:
    """The text of a ``global.cylc``: ``localhost`` (background jobs) and, when ``slurm_platform`` is given, a
    platform of that name submitting through ``sbatch`` on this host; both with ``cylc path = cylc_bin``."""
    lines = [
        "[scheduler]",
        "    [[events]]",
        "        stall timeout = PT0S",
        "        abort on stall timeout = True",
        "[platforms]",
        "    [[localhost]]",
        f"        cylc path = {cylc_bin}",
    ]
    if slurm_platform:
        lines += [
            f"    [[{slurm_platform}]]",
            "        hosts = localhost",
            "        install target = localhost",
            "        job runner = slurm",
            f"        cylc path = {cylc_bin}",
            "        submission polling intervals = PT2S",
            "        execution polling intervals = PT2S",
        ]
    return "\n".join(lines) + "\n"


def scheduler_env(home: str | Path, conf_dir: str | Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for ``cylc`` commands with ``HOME`` (hence ``~/cylc-run``) in ``home`` and the
    ``global.cylc`` of ``conf_dir``; ``cylc`` first on PATH (the scheduler runs ``cylc`` sub-commands)."""
    env = dict(os.environ)
    exe = find_cylc()
    path = env.get("PATH", "")
    if exe is not None:
        path = f"{Path(exe).parent}{os.pathsep}{path}"
    env.update({"HOME": str(home), "CYLC_CONF_PATH": str(conf_dir), "PATH": path})
    env.update(extra or {})
    return env


def cylc(args: list[str], *, env: Mapping[str, str], timeout: float = 600, check: bool = True) -> str:
    """Run ``cylc ARGS``; returns stdout+stderr, raises WxemuError (with the output) on a non-zero exit."""
    exe = find_cylc()
    if exe is None:
        raise WxemuError("cylc is not installed: run `make cycle-install` (or set WXEMU_CYLC)")
    proc = subprocess.run([exe, *args], env=dict(env), capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    if check and proc.returncode != 0:
        raise WxemuError(f"cylc {' '.join(args)} exited {proc.returncode}:\n{out[-4000:]}")
    return out


def template_args(values: Mapping[str, str]) -> list[str]:
    """``--set NAME="value"`` arguments for Jinja2 template variables (string values)."""
    out: list[str] = []
    for k, v in values.items():
        out += ["--set", f"{k}={str(v)!r}"]
    return out
