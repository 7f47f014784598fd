"""The run time never imports the training, benchmark or torch stacks, ``bench`` stays on top
(nothing but the CLI's ``bench`` commands and the benchmark's own tests imports it), and the
one import namespace is ``tierline``.

Every module of ``tierline.serving`` and ``tierline.nlu`` (and the CLI module, whose training
and benchmark commands import their packages inside the command) is imported in a fresh
interpreter; none of ``tierline.training``, ``tierline.bench``, ``torch`` or ``transformers``
may then be in ``sys.modules``. The source is read too, for imports inside functions that an
import alone does not run.
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

import tierline.nlu as nlu
import tierline.serving as serving

names = [m.name for package in (serving, nlu)
         for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
for name in names + ["tierline.cli"]:
    importlib.import_module(name)
banned = ("tierline.training", "tierline.bench", "torch", "transformers")
print(json.dumps({"imported": names,
                  "loaded": sorted({b for b in banned for m in sys.modules
                                    if m == b or m.startswith(b + ".")})}))
"""


def test_runtime_modules_import_neither_training_nor_bench_nor_torch():
    out = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout.strip().splitlines()[-1])
    # The walk reached the packages' depths (a walk that found nothing would pass vacuously).
    assert {"tierline.serving.app", "tierline.serving.channels.whatsapp.client", "tierline.serving.console.views",
            "tierline.serving.storage.db", "tierline.nlu.engine"} <= set(payload["imported"])
    assert payload["loaded"] == []


def package_of(module: str) -> str:
    """``tierline.serving.app`` -> ``serving``; ``torch.nn`` -> ``torch``."""
    parts = module.split(".")
    return parts[1] if parts[0] == "tierline" and len(parts) > 1 else parts[0]


def imported_packages(folder: Path) -> dict[str, set[str]]:
    """Packages (``tierline``'s sub-packages by their own name) each ``.py`` file below
    ``folder`` imports, anywhere in the file."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {package_of(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(package_of(node.module))
        found[str(path.relative_to(ROOT))] = names
    return found


def test_no_package_imports_bench_and_the_runtime_never_imports_training():
    offenders = [f"{path} imports {name}"
                 for package, banned in (("serving", {"bench", "training"}),
                                         ("nlu", {"bench", "training"}), ("training", {"bench"}))
                 for path, names in imported_packages(ROOT / "tierline" / package).items()
                 for name in names & banned]
    assert offenders == []


def test_only_tierline_is_installed_on_the_import_path():
    """pyproject.toml finds packages under ``tierline`` only: no generic top-level ``serving``,
    ``training`` or ``nlu`` in site-packages."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["packages"]["find"]["include"] == ["tierline*"]
    assert not [p for p in ("nlu", "serving", "training", "bench") if (ROOT / p).exists()]


def test_tests_take_their_helpers_from_tests_not_from_bench():
    """Only the benchmark tooling's own tests (``tests/bench/``) import ``bench``."""
    offenders = [path for path, names in imported_packages(ROOT / "tests").items()
                 if "bench" in names and not path.startswith("tests/bench/")]
    assert offenders == []
