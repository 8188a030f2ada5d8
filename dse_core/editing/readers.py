"""Reading the direction files people hold, from every tool that writes them, without running code from them.

Dispatch is on content (the file's first bytes, a zip's members, a dict's keys); the suffix only breaks
the tie when a zip is too damaged to list. What each file becomes:

- dse's own ``.safetensors`` (or a folder holding ``direction.safetensors``): :meth:`Direction.load`.
- InterFaceGAN boundary (``.npy``, float (1, D), unit norm): one direction. The space is in its file
  name: ``*_w_boundary`` / ``*_wp_boundary`` -> ``ws``, ``*_z_boundary`` and the released
  ``{pggan,stylegan}_{dataset}_{attr}_boundary`` (InterFaceGAN's z default) -> ``z``; any other name
  (``boundary.npy`` as its training script writes it) says nothing: see *space* below.
- idinvert boundary (``.npy`` of a pickled dict ``{'boundary': (1, L, D), 'meta_data':
  {'manipulate_layers': ...}}``): one per-layer ``ws`` direction, ``layers`` = manipulate_layers. The
  pickle is read by the restricted unpickler with stand-ins for numpy's array globals, never
  ``allow_pickle=True``.
- e4e / HyperStyle / PTI direction tensor (``.pt``, (D,), (1, D), (1, L, D), saved on any device):
  one direction, (1, L, D) per-layer ``ws``. A (K, D) tensor reads as K directions.
- e4e PCA dict (``.pt``, ``{'mean', 'comp' (K, D) or (K, 1, D), 'std' (K,)}``): K components with std.
- GANSpace ``.npz`` (``lat_comp`` (K, 1, D), ``lat_stdev`` (K,), ...): K components with std; its
  file names end in ``_w`` for w space (``--use_w``), otherwise GANSpace worked in z.
- rosinality closed-form factorization (``.pt``, ``{'ckpt': str, 'eigvec': (D, K)}``): the K columns
  of ``eigvec``, in ``ws`` (SeFa of the modulation weights acts on w).

*space*: ``latent=`` wins; else what the file says; else, with ``G``, the latent of G whose width is
D (a style-based G: ``ws``; PGGAN/BigGAN: ``z``, or BigGAN's ``c``); else ``ws`` (what inversion
edits, and what e4e/HyperStyle/PTI directions live in). With ``G``, the result is checked against it.
"""

from __future__ import annotations

import math
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.lib import format as npy_format

from ..errors import CheckpointError, DamagedFileError, DseError
from ..models.files import torch_load
from ..models.safe_pickle import (BUILTIN_GLOBALS, NUMPY_SCALAR_GLOBALS, RestrictedUnpickler, UnsafePickleError,
                                  numpy_dtype)
from .direction import SUFFIX, Direction

FOLDER_FILE = "direction" + SUFFIX  # what a folder written by `dse directions -o dirs/` holds
FORMATS = ("dse .safetensors (or a folder with direction.safetensors)", "InterFaceGAN .npy boundary",
           "idinvert .npy boundary dict", "e4e/HyperStyle/PTI .pt tensor", "e4e PCA .pt {mean, comp, std}",
           "GANSpace .npz", "rosinality closed-form factor .pt {ckpt, eigvec}")
LATENTS = ("ws", "z", "c")


def load_direction(path: str | Path, G=None, latent: str | None = None) -> Direction:
    """The direction(s) in ``path``, in any format of :data:`FORMATS`; checked against ``G`` when given.

    ``latent`` ("ws", "z", "c") overrides the space the file or ``G`` suggests.
    """
    path = Path(path)
    if latent is not None and latent not in LATENTS:
        raise DseError(f"latent {latent!r}: a direction edits one of {', '.join(LATENTS)}")
    direction = _read(path, _Space(G, latent))
    if G is not None:
        direction.check(G, origin=str(path))
    return direction


def _read(path: Path, space: "_Space") -> Direction:
    if path.is_dir():
        inner = path / FOLDER_FILE
        if not inner.is_file():
            raise DseError(f"{path}: a folder without {FOLDER_FILE}", hint="pass the direction file itself, or a "
                                                                              "folder written by dse directions")
        return _own(inner, space)
    if not path.is_file():
        raise DseError(f"{path}: no such file or folder")
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise DamagedFileError(path, "the file is empty (0 bytes)")
    if head.startswith(npy_format.MAGIC_PREFIX):
        return _read_npy(path, space)
    if head.startswith(b"PK\x03\x04"):
        return _read_npz(path, space) if _is_npz(path) else _read_pt(path, space)
    if len(head) > 8 and head[8:9] == b"{":  # safetensors: an 8-byte header length, then the JSON header
        return _own(path, space)
    if head[0] == 0x80:  # a pickle: torch.save's legacy format (torch_load refuses any other pickle)
        return _read_pt(path, space)
    raise DseError(f"{path}: not a direction file dse reads (it reads: {'; '.join(FORMATS)})")


def _own(path: Path, space: "_Space") -> Direction:
    direction = Direction.load(path)
    if space.latent is not None and space.latent != direction.latent:
        raise DseError(f"{path}: a dse direction in {direction.latent}; latent={space.latent!r} does not apply",
                       hint="leave latent out for dse's own files: they say their latent")
    return direction


def _is_npz(path: Path) -> bool:
    """A zip of .npy members (np.savez), not torch.save's zip (which holds a data.pkl)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):  # too damaged to list: the suffix is all there is
        return path.suffix.lower() == ".npz"
    return not any(n.endswith("data.pkl") for n in names) and any(n.endswith(".npy") for n in names)


# -- the space a direction lives in -------------------------------------------------------------


class _Space:
    """Decides the latent of a direction of width D: the caller's ``latent``, the file's word, G, or "ws"."""

    def __init__(self, G, latent: str | None):
        self.G, self.latent = G, latent

    def __call__(self, width: int, named: str | None = None) -> tuple[str, str]:
        """(latent, where that came from)."""
        if self.latent is not None:
            return self.latent, "argument"
        if named is not None:
            return named, "file"
        if self.G is None:
            return "ws", "default"
        shapes = self.G.latent_shapes
        for name in self.G.latent_names:
            if shapes[name] and shapes[name][-1] == width:
                return name, "generator"
        return self.G.latent_names[0], "generator"  # fits none: check() says what G takes


def _boundary_space(stem: str) -> str | None:
    """The space an InterFaceGAN file name states, None when it states none."""
    stem = stem.lower()
    tagged = re.search(r"(?:^|_)(z|w|wp)_boundary$", stem)
    if tagged:
        return "z" if tagged.group(1) == "z" else "ws"
    if re.match(r"(pggan|stylegan2?)_.+_boundary$", stem):  # its released names: z unless tagged
        return "z"
    return None


def _ganspace_space(stem: str) -> str | None:
    """GANSpace names its files ``{model}-{class}_{layer}_{estimator}_c{K}_n{N}[_w][_seed{S}]``."""
    found = re.search(r"_c\d+_n\d+(_w)?(?:_seed\d+)?$", stem.lower())
    return None if found is None else ("ws" if found.group(1) else "z")


# -- arrays to directions ---------------------------------------------------------------------


def _direction(path: Path, vectors: Any, space: _Space, fmt: str, *, named: str | None = None,
               std: Any = None, layers: tuple[int, ...] | None = None, names: tuple[str, ...] | None = None,
               **source: Any) -> Direction:
    """A Direction from (K, D) or (K, L, D) components (L > 1: per-layer ws)."""
    vectors = _float_tensor(path, vectors, "the direction")
    if vectors.ndim == 3 and named is None:
        named = "ws"  # per-layer: only ws has layers
    latent, how = space(vectors.shape[-1], named)
    if std is not None:
        std = _float_tensor(path, std, "the std")
        if std.numel() != len(vectors):
            raise DseError(f"{path}: {len(vectors)} components but {std.numel()} std values",
                           hint="the file is not as its tool writes it")
    if names is not None and len(names) != len(vectors):
        names = None
    source = {"format": fmt, "file": path.name, "latent_from": how,
              **{k: v for k, v in source.items() if v is not None}}
    return Direction(vectors, latent, std=std, layers=layers, names=names, source=source)


def _float_tensor(path: Path, value: Any, what: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        if not np.issubdtype(value.dtype, np.floating):
            raise DseError(f"{path}: {what} is {value.dtype}, not floating point")
        value = torch.from_numpy(np.array(value, dtype=np.float32))
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise DseError(f"{path}: {what} is {_kind(value)}, not a floating-point array")
    value = value.detach().float().clone()  # a copy: torch_load caches (and may memory-map) what it read
    if not torch.isfinite(value).all():
        raise DamagedFileError(path, f"{what} holds NaN or infinite values")
    return value


def _components(path: Path, array: Any, what: str) -> Any:
    """(D,) -> (1, D); (K, D) and (K, L, D) as they are; size-1 middle axes dropped ((K, 1, D) -> (K, D))."""
    shape = tuple(array.shape)
    if len(shape) == 1:
        return array.reshape(1, -1)
    inner = [n for n in shape[1:-1] if n != 1]
    if len(shape) < 2 or len(inner) > 1 or 0 in shape:
        raise DseError(f"{path}: {what} has shape {shape}; expected (D,), (K, D) or (K, L, D)",
                       hint="a direction is one vector per component, or one per layer per component")
    return array.reshape(shape[0], *inner, shape[-1])


def _kind(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"a {type(value).__name__}" + (f" of shape {tuple(shape)}" if shape is not None else "")


# -- .npy: InterFaceGAN boundaries and idinvert's pickled dicts ---------------------------------


_HEADER_READERS = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}


def _read_npy(path: Path, space: _Space) -> Direction:
    with open(path, "rb") as f:
        try:
            version = npy_format.read_magic(f)
            header = _HEADER_READERS.get(version)
            shape, _fortran, dtype = header(f) if header else ((), False, None)
        except ValueError as exc:
            raise DamagedFileError(path, f"a damaged .npy header ({exc})") from None
        if dtype is not None and dtype.hasobject:
            return _idinvert(path, _unpickle_array(f, path), space)
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # an object array in a header version np.save never writes for one
            raise CheckpointError(path, f"a pickled .npy of format version {version}; dse unpickles only 1.0 and "
                                        "2.0 ones") from None
        raise DamagedFileError(path, f"cannot read the .npy array; it is truncated or damaged ({exc})") from None
    except (OSError, EOFError) as exc:
        raise DamagedFileError(path, f"cannot read the .npy array; it is truncated or damaged ({exc})") from None
    return _direction(path, _components(path, array, "the boundary"), space, "interfacegan",
                      named=_boundary_space(path.stem), names=(_boundary_name(path.stem),))


def _boundary_name(stem: str) -> str:
    return re.sub(r"(_(z|w|wp))?_boundary$", "", stem) or stem


def _idinvert(path: Path, array: np.ndarray, space: _Space) -> Direction:
    content = array.item() if array.ndim == 0 else None
    if not isinstance(content, dict) or not isinstance(content.get("boundary"), np.ndarray):
        raise DseError(f"{path}: a pickled .npy holding {_kind(content if array.ndim == 0 else array)}, not "
                       "idinvert's {'boundary', 'meta_data'} dict", hint="dse reads: " + "; ".join(FORMATS))
    meta = content.get("meta_data") if isinstance(content.get("meta_data"), dict) else {}
    layers = _layer_list(path, meta.get("manipulate_layers"))
    return _direction(path, _components(path, content["boundary"], "the boundary"), space, "idinvert", named="ws",
                      layers=layers, names=(path.stem,), meta_data=_plain(meta))


def _layer_list(path: Path, value: Any) -> tuple[int, ...] | None:
    """idinvert's manipulate_layers: an int, a list of ints, or text like "0-5,8"; empty or None: all."""
    value = _plain(value)  # numpy ints and arrays as Python ones
    if value is None or (isinstance(value, (str, list, tuple)) and not value):
        return None
    try:
        if isinstance(value, str):
            layers = []
            for part in value.replace(" ", "").split(","):
                first, _, last = part.partition("-")
                layers.extend(range(int(first), int(last or first) + 1))
        else:
            layers = [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    except (TypeError, ValueError):
        raise DseError(f"{path}: manipulate_layers {_plain(value)!r} is not a list of layer indices") from None
    if min(layers) < 0:
        raise DseError(f"{path}: manipulate_layers {layers} holds a negative layer")
    return tuple(sorted(set(layers)))


def _plain(value: Any) -> Any:
    """JSON-ready metadata (it goes into the direction's record): numpy values as Python ones, big arrays named."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else f"array {value.shape} {value.dtype}"
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return f"<{type(value).__name__}>"


class _NdarrayName:
    """What the pickle's ``numpy.ndarray`` global resolves to: a name for :func:`_reconstruct` to check."""


class _PendingArray:
    """``numpy.core.multiarray._reconstruct``'s empty array, until BUILD gives its shape, dtype and data."""

    def build(self, state: Any) -> np.ndarray:
        if type(state) is not tuple or len(state) != 5:
            raise UnsafePickleError("an array whose state is not (version, shape, dtype, fortran, data)")
        version, shape, dtype, fortran, data = state
        if (version != 1 or type(shape) is not tuple or not all(type(n) is int and n >= 0 for n in shape)
                or not isinstance(dtype, np.dtype) or type(fortran) is not bool):
            raise UnsafePickleError(f"an array with an invalid shape {shape!r} or dtype")
        order, count = ("F" if fortran else "C"), math.prod(shape)
        if dtype.hasobject:  # idinvert's outer 0-d array: its items were unpickled (restricted) already
            if type(data) is not list or len(data) != count:
                raise UnsafePickleError(f"an object array of shape {shape} without its {count} items")
            flat = np.empty(count, dtype=object)
            for i, item in enumerate(data):
                flat[i] = item
            return flat.reshape(shape, order=order)
        if type(data) is not bytes or len(data) != count * dtype.itemsize:
            raise UnsafePickleError(f"a {dtype.name} array of shape {shape} without its {count * dtype.itemsize} bytes")
        return np.frombuffer(data, dtype=dtype).reshape(shape, order=order).copy()


def _reconstruct(subtype: Any, shape: Any, code: Any) -> _PendingArray:
    """Stand-in for ``numpy.core.multiarray._reconstruct``: only the plain ndarray ndarray.__reduce__ asks for."""
    if subtype is not _NdarrayName or shape != (0,) or code != b"b":
        raise UnsafePickleError("numpy _reconstruct is allowed only for a plain ndarray")
    return _PendingArray()


def _array_dtype(spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """numpy_dtype's plain numbers, and "O8" for the object array np.save wraps a dict in."""
    return np.dtype(object) if spec == "O8" else numpy_dtype(spec, align, copy)


_OBJECT_DTYPE_STATE = (3, "|", None, None, None, -1, -1, 63)  # dtype('O').__reduce__()[2]: flags of object items
_ARRAY_GLOBALS = {**BUILTIN_GLOBALS, **NUMPY_SCALAR_GLOBALS, "numpy.dtype": _array_dtype,
                  "numpy.core.multiarray._reconstruct": _reconstruct, "numpy.ndarray": _NdarrayName}


class _ArrayUnpickler(RestrictedUnpickler):
    """The restricted unpickler, plus BUILD on the arrays it is making (built from the state, never setstate)."""

    dispatch = dict(RestrictedUnpickler.dispatch)

    def load_build(self) -> None:
        state, target = self.stack[-1], self.stack[-2]
        if isinstance(target, _PendingArray):
            self.stack.pop()
            array = self.stack[-1] = target.build(state)
            for key, value in list(self.memo.items()):  # later references to it get the array too
                if value is target:
                    self.memo[key] = array
        elif isinstance(target, np.dtype) and target == object and type(state) is tuple \
                and state == _OBJECT_DTYPE_STATE:
            self.stack.pop()  # the object dtype's standard state: nothing to apply
        else:
            RestrictedUnpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = load_build


def _unpickle_array(f: Any, path: Path) -> np.ndarray:
    """The pickled array after a .npy header, read by the restricted unpickler."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = _ArrayUnpickler(f, _ARRAY_GLOBALS, path).load()
    except CheckpointError:
        raise
    except UnsafePickleError as exc:
        raise CheckpointError(path, f"refused: {exc}") from None
    except Exception as exc:  # EOFError, UnpicklingError, ... on truncated or damaged data
        raise DamagedFileError(path, f"cannot read its pickled array; it is truncated or damaged "
                                     f"({type(exc).__name__}: {exc})") from None
    if not isinstance(array, np.ndarray):
        raise CheckpointError(path, f"a .npy file whose pickle holds {_kind(array)}, not an array")
    return array


# -- .npz: GANSpace -----------------------------------------------------------------------------


def _read_npz(path: Path, space: _Space) -> Direction:
    try:
        with np.load(path, allow_pickle=False) as data:
            if "lat_comp" not in data.files:
                raise DseError(f"{path}: an .npz with {', '.join(data.files[:8])}, not GANSpace components "
                               f"(lat_comp, lat_stdev)", hint="dse reads: " + "; ".join(FORMATS))
            comp, stdev = data["lat_comp"], (data["lat_stdev"] if "lat_stdev" in data.files else None)
    except DseError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):  # an object member: a pickle, which GANSpace never writes
            raise CheckpointError(path, "an .npz member is a pickled object array; dse does not unpickle .npz "
                                        "members") from None
        raise DamagedFileError(path, f"cannot read the .npz; it is truncated or damaged ({exc})") from None
    except Exception as exc:  # BadZipFile, zlib.error, EOFError, ...
        raise DamagedFileError(path, f"cannot read the .npz; it is truncated or damaged ({exc})") from None
    return _direction(path, _components(path, comp, "lat_comp"), space, "ganspace",
                      named=_ganspace_space(path.stem), std=stdev)


# -- .pt: tensors, e4e PCA dicts, rosinality's factor -------------------------------------------


def _read_pt(path: Path, space: _Space) -> Direction:
    obj = torch_load(path)  # weights_only, on the CPU (files saved on cuda:0 too); refuses any other global
    if isinstance(obj, torch.Tensor):
        return _direction(path, _components(path, obj, "the tensor"), space, "tensor", names=(path.stem,))
    if isinstance(obj, dict) and "eigvec" in obj:
        eigvec = _float_tensor(path, obj["eigvec"], "eigvec")
        if eigvec.ndim != 2:
            raise DseError(f"{path}: eigvec has shape {tuple(eigvec.shape)}, expected (D, K)")
        ckpt = obj.get("ckpt")
        return _direction(path, eigvec.T, space, "rosinality-sefa", named="ws",
                          ckpt=ckpt if isinstance(ckpt, str) else None)
    if isinstance(obj, dict) and {"comp", "std"} <= set(obj):
        comp = _float_tensor(path, obj["comp"], "comp")
        return _direction(path, _components(path, comp, "comp"), space, "e4e-pca", std=obj["std"])
    what = f"a dict of {', '.join(map(str, list(obj)[:8]))}" if isinstance(obj, dict) else _kind(obj)
    raise DseError(f"{path}: a torch.save file holding {what}, not a direction",
                   hint="dse reads: " + "; ".join(FORMATS))
