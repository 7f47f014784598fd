"""Where tierline finds its data and models when nothing says otherwise.

The defaults are the project's own ``data/`` and ``models/`` folders beside the ``tierline``
package (a checkout, or an editable install). A deployment points elsewhere with
``TIERLINE_HOME`` (a folder holding ``data/`` and ``models/``), or path by path through the
service's settings (``TIERLINE_FLOW_PATH``, ``TIERLINE_NLU_MODEL_DIR``, ...).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("TIERLINE_HOME") or Path(__file__).resolve().parent.parent)
DATA_DIR = PROJECT_ROOT / "data"
MODELS_DIR = PROJECT_ROOT / "models"
