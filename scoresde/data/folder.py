"""Any folder of images (PNG, JPEG, WebP, BMP) as an :class:`ArrayDataset`, decoded once and cached.

Layout: images anywhere below ``root``. When ``root`` holds ``train/`` and ``test/`` those are the splits;
otherwise a seeded random ``n_test`` of the images is the test split. When every image sits in a sub-folder of
its split root (``root/cat/1.png`` or ``root/train/cat/1.png``), the sub-folder names, sorted, are the class
labels (what ``python -m scoresde.metrics.train_classifier data=folder`` needs for FID features).

Every image is centre-cropped to a square, resized to ``resolution`` (Pillow's antialiased bicubic filter) and
stored as 8-bit levels, 256 of them (the bits/dim convention of :mod:`scoresde.data.base`). The decoded uint8
array is cached in ``$SCORESDE_CACHE/folders`` (or ``~/.cache/scoresde/folders``) under a key made of every
file's relative path, size and modification time and of the decoding options, so a changed folder is decoded
again and an unchanged one costs one ``stat`` per file. Unreadable files are never dropped silently: they are
listed in a ``ValueError`` (``on_error="raise"``, the default) or in a warning (``on_error="skip"``), also when
the array comes from the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from .._validation import check_choice, check_int
from ..metrics.cache import cache_dir as default_cache_dir
from .base import ArrayDataset, RandomHorizontalFlip, from_levels, seeded_split

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
FOLDER_LEVELS = 256
ON_ERROR = ("raise", "skip")
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
_CACHE_VERSION = 1


def list_images(root: Path) -> list[Path]:
    """Image files below ``root`` (by suffix, case-insensitive; hidden files and folders skipped), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath, f) for f in filenames if not f.startswith(".") and f.lower().endswith(IMAGE_SUFFIXES)]
    return sorted(found)


def folder_key(root: Path, files: list[Path], options: dict) -> str:
    """A hash of the files' relative paths, sizes and mtimes and of the decoding options (the cache key)."""
    h = hashlib.sha256(json.dumps({"version": _CACHE_VERSION, **options}, sort_keys=True).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def decode_image(path: Path, resolution: int) -> tuple[np.ndarray, bool]:
    """One file -> (uint8 array (resolution, resolution, 3), whether the file was greyscale).

    Centre crop to the largest square, then an antialiased bicubic resize. Raises OSError / ValueError (Pillow's
    errors for unreadable or truncated files).
    """
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        grey = img.mode in _GREY_MODES
        rgb = img.convert("RGB")
    w, h = rgb.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    rgb = rgb.crop((left, top, left + side, top + side))
    if side != resolution:
        rgb = rgb.resize((resolution, resolution), Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8), grey


def decode_folder(root: Path, files: list[Path], resolution: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode ``files`` -> (uint8 images (N, H, W, 3) of the readable ones, their grey flags (N,), bad files).

    A bad file is named with Pillow's reason: ``"cats/3.png (cannot identify image file ...)"``.
    """
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - Pillow comes with matplotlib
        raise ImportError("data=folder needs Pillow: pip install 'scoresde[images]' (or pillow)") from err
    images, grey, bad = [], [], []
    for f in files:
        try:
            arr, is_grey = decode_image(f, resolution)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            bad.append(f"{f.relative_to(root).as_posix()} ({type(err).__name__}: {err})")
            continue
        images.append(arr)
        grey.append(is_grey)
    stack = np.stack(images) if images else np.zeros((0, resolution, resolution, 3), np.uint8)
    return stack, np.asarray(grey, dtype=bool), bad


def _split_roots(root: Path) -> dict[str, Path] | None:
    if (root / "train").is_dir() and (root / "test").is_dir():
        return {"train": root / "train", "test": root / "test"}
    return None


def _labels(rel: list[Path]) -> tuple[np.ndarray, list[str]] | None:
    """Class indices from the first path component when every file is inside a sub-folder, else None."""
    if not rel or any(len(p.parts) < 2 for p in rel):
        return None
    classes = sorted({p.parts[0] for p in rel})
    index = {c: i for i, c in enumerate(classes)}
    return np.asarray([index[p.parts[0]] for p in rel], dtype=np.int64), classes


def load_folder_arrays(
    root: Path, resolution: int, cache: bool, cache_root: str | Path | None
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Decode (or read from the cache) every image of ``root``: (arrays, bad-file list).

    Arrays: ``images`` uint8 (N, H, W, 3), ``grey`` bool (N,), ``paths`` (N,) relative paths of the readable files.
    """
    files = list_images(root)
    if not files:
        raise ValueError(f"root {str(root)!r} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    path = None
    if cache:
        key = folder_key(root, files, {"resolution": resolution})
        path = default_cache_dir(cache_root) / "folders" / f"{key}.npz"
        if path.is_file():
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in ("images", "grey", "paths")}
                return arrays, [str(b) for b in z["bad"]]
    images, grey, bad = decode_folder(root, files, resolution)
    bad_set = {b.split(" (", 1)[0] for b in bad}
    rel = [f.relative_to(root).as_posix() for f in files]
    paths = np.asarray([r for r in rel if r not in bad_set], dtype=str)
    arrays = {"images": images, "grey": grey, "paths": paths}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays, bad=np.asarray(bad, dtype=str))
        os.replace(tmp, path)
    return arrays, bad


def _check_args(resolution, channels, on_error, n_test) -> None:
    check_int("resolution", resolution)
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 (grey), 3 (RGB) or None (grey when every image is), got {channels!r}")
    check_choice("on_error", on_error, ON_ERROR)
    if isinstance(n_test, bool) or not (
        (isinstance(n_test, int) and n_test >= 1) or (isinstance(n_test, float) and 0 < n_test < 1)
    ):
        raise ValueError(f"n_test must be a count >= 1 or a fraction in (0, 1), got {n_test!r}")


def image_folder(
    root: str | Path,
    resolution: int = 32,
    *,
    channels: int | None = None,
    random_flip: bool = False,
    n_test: int | float = 0.1,
    seed: int = 0,
    on_error: str = "raise",
    cache: bool = True,
    cache_dir: str | Path | None = None,
    name: str | None = None,
    data_range: tuple[float, float] = (-1.0, 1.0),
) -> ArrayDataset:
    """The images below ``root`` as (N, C, resolution, resolution) float32 in ``data_range``, 256 levels.

    Args:
        root: The folder (see the module docstring for the train/test and class sub-folder layouts).
        resolution: Side of the square images after centre crop and resize.
        channels: 3 (RGB), 1 (grey: ITU-R 601-2 luma of the resized RGB, as Pillow's "L") or None (1 when every
            file is greyscale).
        random_flip: Random horizontal flips as the dataset's ``train_transform``.
        n_test: Test split without ``train/`` and ``test/`` sub-folders: a count, or a fraction of the images.
        seed: Seed of that random split.
        on_error: ``"raise"``: a ValueError names every unreadable file; ``"skip"``: they are left out and named
            in a warning.
        cache: Keep the decoded array in the cache folder (``$SCORESDE_CACHE``, ``~/.cache/scoresde`` or
            ``cache_dir``) and reuse it while the folder's files are unchanged.
        name: Dataset name (the FID classifier's cache name); default ``folder_<root's name>_<resolution>``.
        data_range: (lo, hi) the levels 0 and 255 map to.
    """
    _check_args(resolution, channels, on_error, n_test)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"root {str(root)!r} is not a directory (data=folder data.root=DIR)")
    arrays, bad = load_folder_arrays(root, resolution, cache, cache_dir)
    if bad:
        listing = "\n  ".join(bad)
        if on_error == "raise":
            raise ValueError(
                f"{len(bad)} unreadable image file(s) in {root}:\n  {listing}\n"
                "Remove them, or pass on_error='skip' (data.dataset.on_error=skip on the command line) to skip them."
            )
        warnings.warn(f"skipped {len(bad)} unreadable image file(s) in {root}:\n  {listing}", stacklevel=2)
    images, grey, paths = arrays["images"], arrays["grey"], [Path(p) for p in arrays["paths"]]
    if len(paths) < 2:
        raise ValueError(f"root {str(root)!r} has {len(paths)} readable image(s); a dataset needs at least 2")
    channels = channels or (1 if grey.all() else 3)
    levels = torch.from_numpy(images).permute(0, 3, 1, 2)
    if channels == 1:  # ITU-R 601-2 luma, as Pillow's convert("L")
        levels = (levels.double() * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        levels = levels.round().clamp(0, 255).to(torch.uint8)
    x = from_levels(levels, FOLDER_LEVELS, data_range)
    if _split_roots(root) is not None:
        top = np.asarray([p.parts[0] if len(p.parts) > 1 else "" for p in paths])
        used = np.isin(top, ["train", "test"])
        if not used.all():
            warnings.warn(f"{root} has train/ and test/; {int((~used).sum())} image(s) outside them are not used",
                          stacklevel=2)  # fmt: skip
        x, top = x[torch.from_numpy(np.flatnonzero(used))], top[used]
        rel = [Path(*p.parts[1:]) for p, u in zip(paths, used, strict=True) if u]
        idx = {s: torch.from_numpy(np.flatnonzero(top == s)) for s in ("train", "test")}
        if not (len(idx["train"]) and len(idx["test"])):
            raise ValueError(f"{root}/train and {root}/test must each hold at least one readable image")
    else:
        count = n_test if isinstance(n_test, int) else max(1, round(n_test * len(paths)))
        train_idx, test_idx = seeded_split(len(paths), count, seed)
        idx, rel = {"train": train_idx, "test": test_idx}, paths
    found = _labels(rel)
    labels = None if found is None else torch.from_numpy(found[0])
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", root.resolve().name) or "root"
    return ArrayDataset(
        name=name or f"folder_{safe}_{resolution}",
        train=x[idx["train"]],
        test=x[idx["test"]],
        train_labels=None if labels is None else labels[idx["train"]],
        test_labels=None if labels is None else labels[idx["test"]],
        levels=FOLDER_LEVELS,
        data_range=data_range,
        num_classes=None if found is None else len(found[1]),
        train_transform=RandomHorizontalFlip() if random_flip else None,
    )


def folder_classes(root: str | Path) -> list[str] | None:
    """The class names (sorted sub-folder names) :func:`image_folder` gives labels for, or None without labels."""
    root = Path(root).expanduser()
    base = _split_roots(root)
    rel = [p.relative_to(root) for p in list_images(root)]
    if base is not None:
        rel = [Path(*p.parts[1:]) for p in rel if p.parts[0] in ("train", "test")]
    found = _labels(rel)
    return None if found is None else found[1]
