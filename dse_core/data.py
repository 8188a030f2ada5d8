"""Reading users' image files into generator-sized tensors.

Any PNG, JPEG, WebP, BMP or TIFF (greyscale, palette, RGBA, 16-bit) becomes an NCHW tensor in
[-1, 1] at the generator's resolution: turned upright as its EXIF orientation says,
then the centre square is cropped and resized (antialiased bicubic). Transparent pixels
are composited on a background colour (the model's, see ``dse invert --background``). An
image over 4096x4096 pixels and 8x the resolution is reduced before it becomes floats: a JPEG is decoded
reduced (DCT scaling), any format's centre square is area-averaged to 4x the resolution; so a
12000 px JPEG inverting into a 32 px model costs megabytes, a PNG its 8-bit decode (~0.6 GB), not
the ~4 GB of floats it took. Smaller images are read exactly as they always were.
What had to change (orientation, aspect, alpha, bit depth, size) is reported per image, and an
unreadable file (or one too large to decode safely) is reported, not fatal. With a face detector
(``dse invert --align``) the whole upright image is read in full and its face's FFHQ crop
(:mod:`dse_core.align`) replaces the centre square; an image without a face is reported like an unreadable one.
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
from PIL import Image, UnidentifiedImageError

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


DEEP_MODES = ("I;16", "I;16B", "I;16L", "I")  # 16-bit greyscale (PNG, TIFF), and 32-bit integer
LUMA = (0.299, 0.587, 0.114)  # RGB -> grey weights (ITU-R BT.601)


def _deep_scale(image: Image.Image) -> float:
    """What a 16-bit image's values are divided by: 65535, or 255 for an "I" image whose values are all 8-bit."""
    if image.mode.startswith("I;16") or image.getextrema()[1] > 255:
        return 65535.0
    return 255.0


def _to_array(image: Image.Image, channels: int, notes: list[str], background: tuple[int, int, int],
              deep_scale: float = 65535.0) -> np.ndarray:
    """HWC float32 in [0, 1] with ``channels`` channels (``deep_scale``: see :func:`_deep_scale`)."""
    if image.mode in DEEP_MODES:
        array = np.asarray(image, dtype=np.float32) / deep_scale
        notes.append("16-bit converted to 8-bit range")
        array = np.clip(array, 0, 1)[:, :, None].repeat(3, axis=2)
    else:
        if _has_alpha(image):
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, (*background, 255)), rgba)
            notes.append(f"transparency composited on {_colour_name(background)}")
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if channels == 1:
        return (array @ np.array(LUMA, dtype=np.float32))[:, :, None]
    return array


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def _colour_name(rgb: tuple[int, int, int]) -> str:
    names = {v: k for k, v in COLOURS.items() if k != "gray"}
    return names.get(tuple(rgb), "#{:02x}{:02x}{:02x}".format(*rgb))


_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}  # EXIF orientation -> what turns the stored pixels upright (as ImageOps)


def _orientation(image: Image.Image) -> Image.Transpose | None:
    """What turns the stored pixels upright: phones store them sideways plus an EXIF orientation."""
    orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    return _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None


REDUCE_ABOVE = 4  # a large image's centre square is reduced to this many times the resolution (area average)
REDUCE_PIXELS = 4096 * 4096  # images up to this many pixels (or under 2 x REDUCE_ABOVE x the resolution) are read in
# full, exactly as they always were


def _reduced(image: Image.Image, full: tuple[int, int], resolution: int) -> Image.Image:
    """The centre square of a decoded (maybe draft-scaled) image, area-averaged to REDUCE_ABOVE x the resolution.

    ``full``: the size the image has decoded in full; the square is placed in its pixels, then mapped onto the
    decoded ones exactly (fractions of a pixel included), so that it stays centred however coarse the draft.
    """
    side = min(full)
    left, top = (full[0] - side) // 2, (full[1] - side) // 2
    sx, sy = full[0] / image.size[0], full[1] / image.size[1]  # JPEG's draft: 1, 2, 4 or 8 (rounded up)
    if image.size != full:  # a draft: its pixels are whole multiples of full-size ones, the last one partial
        sx = sy = round(max(sx, sy))
    box = (left / sx, top / sy, min((left + side) / sx, image.size[0]), min((top + side) / sy, image.size[1]))
    if image.mode in ("P", "PA"):  # indices cannot be averaged: their colours can
        image = image.convert("RGBA" if _has_alpha(image) else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode.startswith("I;16"):
        image = image.convert("I")
    keep = REDUCE_ABOVE * resolution  # LA and RGBA are averaged premultiplied: transparent pixels weigh nothing
    return image.resize((keep, keep), Image.Resampling.BOX, box=box)


_SIDEWAYS = (Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE, Image.Transpose.ROTATE_90,
             Image.Transpose.ROTATE_270)  # these swap width and height


def _decode(image: Image.Image, resolution: int, channels: int, background: tuple[int, int, int],
            notes: list[str], square: bool = True) -> tuple[np.ndarray, int, str | None]:
    """The upright centre square as an HWC array; the upright short side; the size a large image was decoded at.

    ``square`` False (face alignment): the whole upright image, in full."""
    stored = image.size
    transpose = _orientation(image)  # read before decoding: TIFF's decoder turns the pixels itself
    large = square and stored[0] * stored[1] > REDUCE_PIXELS and min(stored) >= 2 * REDUCE_ABOVE * resolution
    if large:  # JPEG: DCT-scaled decoding, 1/2, 1/4 or 1/8 (other formats ignore a draft)
        keep = REDUCE_ABOVE * resolution
        image.draft(image.mode, (stored[0] * keep // min(stored), stored[1] * keep // min(stored)))
    image.load()  # decode now: truncated files fail here, not later
    if transpose is not None:
        notes.append("rotated as its EXIF orientation says")
        if _orientation(image) is None:  # PIL turned it while decoding (TIFF)
            transpose = None
    full = image.size if image.size in (stored, stored[::-1]) else stored  # else JPEG's draft made it smaller
    width, height = full[::-1] if transpose in _SIDEWAYS else full  # upright, as decoded in full
    deep_scale = _deep_scale(image) if image.mode in DEEP_MODES else 65535.0
    side = min(width, height)
    if not large:  # as always: the whole image upright, converted, then its centre square
        array = _to_array(image if transpose is None else image.transpose(transpose), channels, notes, background,
                          deep_scale)
        top, left = (height - side) // 2, (width - side) // 2
        array, decoded = (array[top : top + side, left : left + side] if square else array), None
    else:  # the stored centre square reduced first (a square: turning it upright keeps it centred)
        image = _reduced(image, full, resolution)
        decoded = f"{image.size[0]}x{image.size[1]}"
        array = _to_array(image if transpose is None else image.transpose(transpose), channels, notes, background,
                          deep_scale)
    if width != height and square:
        notes.append(f"cropped {width}x{height} to its centre square")
    return array, side, decoded


def load_image(path: str | Path, resolution: int, channels: int = 3,
               background: tuple[int, int, int] = (255, 255, 255), align=None) -> LoadedImage:
    """One image file as a tensor; raises ValueError (with the reason) when it cannot be read.

    ``align`` (a :class:`~dse_core.align.FaceDetector`, or any callable from a (3, H, W) image in [-1, 1] to
    :class:`~dse_core.align.FaceLandmarks`): the face's FFHQ crop instead of the centre square; no face found is a
    :class:`~dse_core.align.NoFaceError`, a ValueError.

    An image above PIL's decompression-bomb warning size (~89 Mpx) is read with a note instead of the
    warning; one above twice that is refused ("too large to decode safely").
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise ValueError("empty file (0 bytes)")
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # said as a note instead
            # from a file object: Pillow memory-maps an uncompressed TIFF opened by name, and then turns it
            # upright wrongly (Pillow 13: the pixels transposed, the size not)
            with open(path, "rb") as file, Image.open(file) as image:
                size = image.size
                array, side, decoded = _decode(image, resolution, 3 if align else channels, background, notes,
                                               square=align is None)
    except Image.DecompressionBombError as exc:  # not an OSError: PIL's guard against huge images
        raise ValueError(f"too large to decode safely ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"not a readable image ({exc})") from None
    if Image.MAX_IMAGE_PIXELS and size[0] * size[1] > Image.MAX_IMAGE_PIXELS:  # where PIL warns
        how = f"reduced to {decoded} as it was read" if decoded else "read in full"
        notes.insert(0, f"a very large image ({size[0]}x{size[1]}, {size[0] * size[1] / 1e6:.0f} Mpx): {how}")
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
    if align is not None:
        return _aligned(path, tensor * 2 - 1, resolution, channels, align, notes)
    if side != resolution:
        notes.append(f"resized {side}px to {resolution}px")
        # antialiased bicubic: no aliasing when shrinking large photos to small generators
        tensor = F.interpolate(tensor[None], size=(resolution, resolution), mode="bicubic", antialias=True)[0]
    return LoadedImage(path, (tensor * 2 - 1).clamp(-1, 1), tuple(notes))


def _aligned(path: Path, image: torch.Tensor, resolution: int, channels: int, align, notes: list[str]) -> LoadedImage:
    """The FFHQ face crop of a (3, H, W) image in [-1, 1], at the resolution, in ``channels`` channels."""
    from .align import align_face

    landmarks = align(image)  # NoFaceError (a ValueError): reported per image like an unreadable file
    face = align_face(image, resolution, landmarks)
    notes.append(landmarks.note())
    if channels == 1:
        face = torch.einsum("chw,c->hw", face, torch.tensor(LUMA, dtype=face.dtype))[None]
    return LoadedImage(path, face.clamp(-1, 1), tuple(notes))
