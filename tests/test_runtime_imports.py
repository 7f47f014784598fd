"""The run time never imports the training, benchmark or torch stacks, and ``bench`` stays on
top: nothing but the CLI's ``bench`` commands and the benchmark's own tests imports it.

Every module of ``serving`` and ``nlu`` (and the CLI module, whose training and benchmark
commands import their packages inside the command) is imported in a fresh interpreter; none of
``training``, ``bench``, ``torch`` or ``transformers`` may then be in ``sys.modules``. The
source is read too, for imports inside functions that an import alone does not run.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

IMPORT_ALL = r"""
import importlib, json, pkgutil, sys

import nlu, serving

names = [m.name for package in (serving, nlu)
         for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
for name in names + ["tierline.cli"]:
    importlib.import_module(name)
print(json.dumps({"imported": names,
                  "loaded": sorted({m.split(".")[0] for m in sys.modules}
                                   & {"training", "bench", "torch", "transformers"})}))
"""


def test_runtime_modules_import_neither_training_nor_bench_nor_torch():
    out = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout.strip().splitlines()[-1])
    # The walk reached the packages' depths (a walk that found nothing would pass vacuously).
    assert {"serving.app", "serving.whatsapp.client", "serving.console.views",
            "serving.storage.db", "nlu.engine"} <= set(payload["imported"])
    assert payload["loaded"] == []


def imported_packages(folder: Path) -> dict[str, set[str]]:
    """Top-level packages each ``.py`` file below ``folder`` imports, anywhere in the file."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_no_package_imports_bench_and_the_runtime_never_imports_training():
    offenders = [f"{path} imports {name}"
                 for package, banned in (("serving", {"bench", "training"}),
                                         ("nlu", {"bench", "training"}), ("training", {"bench"}))
                 for path, names in imported_packages(ROOT / package).items()
                 for name in names & banned]
    assert offenders == []


def test_tests_take_their_helpers_from_tests_not_from_bench():
    """Only the benchmark tooling's own tests (``tests/bench/``) import ``bench``."""
    offenders = [path for path, names in imported_packages(ROOT / "tests").items()
                 if "bench" in names and not path.startswith("tests/bench/")]
    assert offenders == []
