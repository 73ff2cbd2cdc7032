"""The worked notebooks (notebooks/*.ipynb) run top to bottom on the bundled sample and are stored clean.

Each notebook is executed with nbclient in a kernel of this interpreter (the shared venv), in a fresh temporary
working directory (the notebooks write only there), with this checkout first on PYTHONPATH; any cell error fails
the test. The notebooks use short demo settings so the five together run in a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = [
    "01_catalog_and_ingest.ipynb",
    "02_train_emulators.ipynb",
    "03_forecast_and_verify.ipynb",
    "04_comparison_study.ipynb",
    "05_explain.ipynb",
]
CELL_TIMEOUT_S = 600


@pytest.mark.parametrize("name", NAMES, ids=[n.split("_")[0] for n in NAMES])
def test_notebook_runs_top_to_bottom(name: str, tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    start = time.perf_counter()
    client.execute(env=env, cwd=str(tmp_path))  # raises CellExecutionError naming the cell on any error
    elapsed = time.perf_counter() - start
    print(f"{name}: {elapsed:.1f} s")
    images = sum(
        "image/png" in out.get("data", {}) for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
    )
    assert images >= 1, f"{name}: ran without showing a single plot"
    written = {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*")}
    assert written <= {f"wxemu-notebook-{name[:2]}"}, f"{name} wrote outside its output folder: {sorted(written)}"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_without_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{name} has no code"
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{name}: cells {dirty} are stored with outputs; clear them before committing"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_uses_the_python_api_not_the_shell(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not re.search(r"^\s*[!%]|subprocess|os\.system", source, re.MULTILINE), name
    assert any(c.cell_type == "markdown" for c in nb.cells[:1]), f"{name} does not open with its explanation"


def test_readme_links_every_notebook() -> None:
    readme = (NOTEBOOKS / "README.md").read_text()
    missing = [n for n in NAMES if f"]({n})" not in readme]
    assert not missing, f"notebooks/README.md does not link {missing}"
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)
