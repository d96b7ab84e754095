"""How many threads image work runs on, one policy for restructure and the copy search: one per core.

Threads, not processes: inflating, decoding, hashing, SIFT and RANSAC release the GIL. The OpenCV loader takes
train.threads instead, a training setting (docs/scaling.md: how many cores feed one GPU).
"""

from __future__ import annotations

import os


def image_threads(cap: int | None = None) -> int:
    """One thread per core the process may use, at most `cap`."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, cap or cores))
