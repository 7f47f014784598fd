"""The run-time packages must work where torch and transformers cannot even be imported."""

import json
import subprocess
import sys

BLOCK_AND_RUN = r"""
import importlib.abc, json, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "transformers", "sklearn", "datasets", "mlflow",
                                  "ray"} or name.startswith("tierline.training"):
            raise ImportError(f"{name} is not allowed at run time")
        return None

sys.meta_path.insert(0, Block())
from tierline.nlu import Analyzer
import tierline.serving.app
tierline.serving.app.create_app()
result = Analyzer.load().analyze(["where is my order"])[0]
print(json.dumps({"intent": result.intent,
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "transformers"})}))
"""


def test_nlu_and_serving_import_and_run_without_torch():
    out = subprocess.run([sys.executable, "-c", BLOCK_AND_RUN], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout.strip().splitlines()[-1])
    assert payload == {"intent": "track_order", "loaded": []}
