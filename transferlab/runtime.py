"""Device choice, thread count and seeding."""
from __future__ import annotations

import random

import numpy as np
import torch

from .parallel import cores


def configure(device: str = "auto", threads: int = 0) -> torch.device:
    """Pick the device and thread count; deterministic algorithms on CPU."""
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device is 'cuda' but no CUDA device is available")
    chosen = torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")
    # Beyond a few threads small convolutions get slower, not faster.
    torch.set_num_threads(threads or min(cores(), 8))
    if chosen.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    return chosen


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
