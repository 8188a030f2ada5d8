"""Reading users' image files into generator-sized tensors.

Any PNG, JPEG, WebP, BMP or TIFF (greyscale, palette, RGBA, 16-bit) becomes an NCHW tensor in
[-1, 1] at the generator's resolution: turned upright as its EXIF orientation says,
then the centre square is cropped and resized (antialiased bicubic). What had to
change (orientation, aspect, alpha, bit depth) is reported per image, and an
unreadable file (or one too large to decode safely) is reported, not fatal.
"""

from __future__ import annotations

import functools

from collections import Counter
from pathlib import Path
from typing import Iterable

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".bmp", ".dib", ".tif", ".tiff")
EXIF_ORIENTATION = 0x0112  # the EXIF tag: 1 = upright, 2-8 = mirrored and/or rotated


@attrs.frozen
class LoadedImage:
    path: Path
    tensor: torch.Tensor  # (img_channels, resolution, resolution) in [-1, 1]
    notes: tuple[str, ...] = ()  # what was converted: "cropped 640x480 to a centre square", ...


@attrs.frozen
class BadImage:
    path: Path
    reason: str


@attrs.frozen
class ImageScan:
    found: list[Path]  # image files, each folder's sorted
    missing: list[BadImage]  # inputs that do not exist
    unsupported: dict[str, int]  # suffix ("" for none) -> files in the folders skipped for it (hidden files not counted)


def scan_inputs(inputs: Iterable[str | Path]) -> ImageScan:
    """Expand files and folders (recursively, sorted) into image paths; say what was missing or skipped."""
    found, missing, unsupported = [], [], Counter()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            found.extend(p for p in files if p.suffix.lower() in IMAGE_SUFFIXES)
            unsupported.update(p.suffix.lower() for p in files  # images in formats we skip; notes etc. silently
                               if p.suffix.lower() in _other_image_suffixes() and not p.name.startswith("."))
        elif path.is_file():
            found.append(path)
        else:
            missing.append(BadImage(path, "no such file or folder"))
    unique, seen = [], set()
    for p in found:  # a file given twice (or also inside a folder given) is one input, at its first mention
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return ImageScan(unique, missing, dict(sorted(unsupported.items())))


def find_images(inputs: Iterable[str | Path]) -> tuple[list[Path], list[BadImage]]:
    """Expand files and folders (recursively, sorted) into image paths; missing paths are reported."""
    scan = scan_inputs(inputs)
    return scan.found, scan.missing


_NOT_PICTURES = {".h5", ".hdf", ".bufr", ".grib", ".mpg", ".mpeg", ".eps", ".ps", ".emf", ".wmf", ".iim"}  # data, video, vector


@functools.cache
def _other_image_suffixes() -> frozenset[str]:
    """Extensions of image formats PIL knows that dse does not read (.gif, .psd, ...)."""
    Image.init()
    readable = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    return frozenset(readable - set(IMAGE_SUFFIXES) - _NOT_PICTURES)


def describe_unsupported(unsupported: dict[str, int]) -> str:
    """``'3 images (.gif, .psd)'`` for the images in other formats :func:`scan_inputs` skipped."""
    n = sum(unsupported.values())
    return f"{n} image{'s' if n != 1 else ''} ({', '.join(unsupported)})"


def _to_array(image: Image.Image, channels: int, notes: list[str]) -> np.ndarray:
    """HWC float32 in [0, 1] with ``channels`` channels."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        scale = 65535.0 if image.mode.startswith("I;16") or np.asarray(image).max() > 255 else 255.0
        array = np.asarray(image, dtype=np.float32) / scale
        notes.append("16-bit converted to 8-bit range")
        array = np.clip(array, 0, 1)[:, :, None].repeat(3, axis=2)
    else:
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, rgba)
            notes.append("transparency composited on white")
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if channels == 1:
        return (array @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[:, :, None]
    return array


def _upright(image: Image.Image, notes: list[str]) -> Image.Image:
    """The image as it is meant to be seen: phones store pixels sideways plus an EXIF orientation."""
    if image.getexif().get(EXIF_ORIENTATION, 1) in (None, 1):
        return image
    notes.append("rotated as its EXIF orientation says")
    return ImageOps.exif_transpose(image)


def load_image(path: str | Path, resolution: int, channels: int = 3) -> LoadedImage:
    """One image file as a tensor; raises ValueError (with the reason) when it cannot be read."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise ValueError("empty file (0 bytes)")
    try:
        with Image.open(path) as image:
            image.load()  # decode now: truncated files fail here, not later
            notes: list[str] = []
            array = _to_array(_upright(image, notes), channels, notes)
    except Image.DecompressionBombError as exc:  # not an OSError: PIL's guard against huge images
        raise ValueError(f"too large to decode safely ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"not a readable image ({exc})") from None
    height, width = array.shape[:2]
    side = min(width, height)
    if width != height:
        notes.append(f"cropped {width}x{height} to its centre square")
    top, left = (height - side) // 2, (width - side) // 2
    tensor = torch.from_numpy(np.ascontiguousarray(array[top : top + side, left : left + side])).permute(2, 0, 1)
    if side != resolution:
        notes.append(f"resized {side}px to {resolution}px")
        # antialiased bicubic: no aliasing when shrinking large photos to small generators
        tensor = F.interpolate(tensor[None], size=(resolution, resolution), mode="bicubic", antialias=True)[0]
    return LoadedImage(path, (tensor * 2 - 1).clamp(-1, 1), tuple(notes))
