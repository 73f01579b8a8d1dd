"""Which GPUs a process may see: set before anything in it imports torch, inherited by its children."""

from __future__ import annotations

import os
from collections.abc import Sequence


def pin_gpus(gpus: Sequence[int]) -> None:
    """Make only ``gpus`` visible to this process and the processes it starts (none: CPU only).

    CUDA reads CUDA_VISIBLE_DEVICES once, when torch first initialises it, so
    this must run first; the indices are the host's, as nvidia-smi numbers them.
    """
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(gpu) for gpu in gpus)
