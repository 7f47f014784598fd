"""Notebooks run top to bottom with the project's kernel (a notebook that does not run is a bug)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path, monkeypatch):
    # Small configuration; MLflow logs into a temporary store, never the repository's.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("TIERLINE_NOTEBOOK_CONVERSATIONS", "300")
    monkeypatch.setenv("TIERLINE_NOTEBOOK_SHOP_CONVERSATIONS", "300")
    monkeypatch.setenv("TIERLINE_NOTEBOOK_SHOP_BOOTSTRAP", "900")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert len(outputs) >= 3
