"""How long data=folder takes to decode a folder once and to reload it from the cache.

    python benchmarks/folder_cache.py [--n 2000] [--resolution 32]

Writes n random 128x96 PNGs in 10 class folders into a temporary directory, then times two calls of
``scoresde.data.image_folder`` (decode + cache write, then cache hit) with a temporary cache.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scoresde.data import image_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--resolution", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        for i in range(args.n):
            (root / f"c{i % 10}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(root / f"c{i % 10}" / f"{i}.png")
        for label in ("decode + write cache", "cache hit"):
            start = time.perf_counter()
            ds = image_folder(root, resolution=args.resolution, cache_dir=Path(tmp) / "cache")
            print(f"{label}: {time.perf_counter() - start:.2f} s for {ds.train.shape[0] + ds.test.shape[0]} images "
                  f"at {args.resolution}x{args.resolution} (load average {os.getloadavg()[0]:.1f})")  # fmt: skip


if __name__ == "__main__":
    main()
