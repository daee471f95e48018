"""Shared test setup. Triton kernels run in the interpreter on a machine without a GPU; the switch must be
set before triton decorates any kernel, so it lives here, before any test module imports kernels/."""
import os
import sys
from pathlib import Path

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# the scripts live at the repository root; tests import them as modules
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
torch.set_num_threads(min(2, os.cpu_count() or 1))
