"""Cylc xtrigger: the analysis of a cycle point is in the source (``wxemu cycle available`` exits 0).

Runs in the scheduler's environment (Cylc's own venv), so it calls the project's ``wxemu`` as a command.
"""

import os
import subprocess


def wxemu_data_arrived(point, config, wxemu_bin="", pythonpath=""):
    """Return (satisfied, results) as Cylc xtriggers do."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    wxemu = os.path.join(wxemu_bin, "wxemu") if wxemu_bin else "wxemu"
    proc = subprocess.run(
        [wxemu, "cycle", "available", "--point", point, "--config", config],
        env=env,
        capture_output=True,
        text=True,
    )
    return proc.returncode == 0, {"point": point, "message": (proc.stdout or proc.stderr).strip()[-500:]}
