"""Reading users' image files into generator-sized tensors.

Any PNG, JPEG, WebP, BMP or TIFF (greyscale, palette, RGBA, 16-bit) becomes an NCHW tensor in
[-1, 1] at the generator's resolution: turned upright as its EXIF orientation says,
then the centre square is cropped and resized (antialiased bicubic). Transparent pixels
are composited on a background colour (the model's, see ``dse invert --background``). A
photo far larger than the generator is decoded reduced (JPEG's DCT scaling, else PIL's box
reduce) so that a 12000 px file inverting into a 32 px model costs megabytes, not gigabytes.
What had to change (orientation, aspect, alpha, bit depth, size) is reported per image, and an
unreadable file (or one too large to decode safely) is reported, not fatal.
"""

from __future__ import annotations

import functools
import re
import warnings
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
    roots: list[Path]  # the inputs as given (output names are relative to the folders among them)
    found: list[Path]  # image files, each folder's sorted
    missing: list[BadImage]  # inputs that do not exist
    unsupported: dict[str, int]  # suffix ("" for none) -> files in the folders skipped for it (hidden files not counted)


def scan_inputs(inputs: Iterable[str | Path]) -> ImageScan:
    """Expand files and folders (recursively, sorted) into image paths; say what was missing or skipped."""
    inputs = list(inputs)
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
    return ImageScan([Path(p) for p in inputs], unique, missing, dict(sorted(unsupported.items())))


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


COLOURS = {"white": (255, 255, 255), "black": (0, 0, 0), "grey": (128, 128, 128), "gray": (128, 128, 128)}


def parse_colour(text: str) -> tuple[int, int, int]:
    """``white``, ``black``, ``grey`` or ``#rrggbb`` as an RGB triple; a :class:`DseError` for anything else."""
    from .errors import DseError

    value = text.strip().lower()
    if value in COLOURS:
        return COLOURS[value]
    if re.fullmatch(r"#[0-9a-f]{6}", value):
        return tuple(int(value[i:i + 2], 16) for i in (1, 3, 5))
    raise DseError(f"background {text!r}: expected white, black, grey or #rrggbb")


def _to_array(image: Image.Image, channels: int, notes: list[str], background: tuple[int, int, int]) -> np.ndarray:
    """HWC float32 in [0, 1] with ``channels`` channels."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        scale = 65535.0 if image.mode.startswith("I;16") or np.asarray(image).max() > 255 else 255.0
        array = np.asarray(image, dtype=np.float32) / scale
        notes.append("16-bit converted to 8-bit range")
        array = np.clip(array, 0, 1)[:, :, None].repeat(3, axis=2)
    else:
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, (*background, 255)), rgba)
            notes.append(f"transparency composited on {_colour_name(background)}")
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if channels == 1:
        return (array @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[:, :, None]
    return array


def _colour_name(rgb: tuple[int, int, int]) -> str:
    names = {v: k for k, v in COLOURS.items() if k != "gray"}
    return names.get(tuple(rgb), "#{:02x}{:02x}{:02x}".format(*rgb))


def _upright(image: Image.Image, notes: list[str]) -> Image.Image:
    """The image as it is meant to be seen: phones store pixels sideways plus an EXIF orientation."""
    if image.getexif().get(EXIF_ORIENTATION, 1) in (None, 1):
        return image
    notes.append("rotated as its EXIF orientation says")
    return ImageOps.exif_transpose(image)


REDUCE_ABOVE = 4  # decode reduced while the centre square stays at least this many times the resolution


def _centre_square(image: Image.Image, resolution: int, notes: list[str]) -> Image.Image:
    """The centre square, box-reduced by an integer factor while it stays >= REDUCE_ABOVE x the resolution."""
    width, height = image.size
    side = min(width, height)
    if width != height:
        notes.append(f"cropped {width}x{height} to its centre square")
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    factor = side // (REDUCE_ABOVE * resolution)
    if factor >= 2 and image.mode not in ("I;16", "I;16B", "I;16L", "I"):
        image = image.reduce(factor)
    return image


def load_image(path: str | Path, resolution: int, channels: int = 3,
               background: tuple[int, int, int] = (255, 255, 255)) -> LoadedImage:
    """One image file as a tensor; raises ValueError (with the reason) when it cannot be read."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise ValueError("empty file (0 bytes)")
    notes: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", Image.DecompressionBombWarning)  # ours to report, as a note
            image = Image.open(path)
        with image:
            side = min(image.size)
            if side >= 2 * REDUCE_ABOVE * resolution:
                image.draft(image.mode, (image.size[0] * REDUCE_ABOVE * resolution // side,
                                         image.size[1] * REDUCE_ABOVE * resolution // side))  # JPEG: decode scaled down
            image.load()  # decode now: truncated files fail here, not later
            if any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught):
                notes.append(f"a very large image ({side}px): decoded reduced to what a {resolution}px model needs")
            array = _to_array(_centre_square(_upright(image, notes), resolution, notes), channels, notes, background)
    except Image.DecompressionBombError as exc:  # not an OSError: PIL's guard against huge images
        raise ValueError(f"too large to decode safely ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"not a readable image ({exc})") from None
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
    if tensor.shape[-1] != resolution:
        notes.append(f"resized {side}px to {resolution}px")
        # antialiased bicubic: no aliasing when shrinking large photos to small generators
        tensor = F.interpolate(tensor[None], size=(resolution, resolution), mode="bicubic", antialias=True)[0]
    return LoadedImage(path, (tensor * 2 - 1).clamp(-1, 1), tuple(notes))
