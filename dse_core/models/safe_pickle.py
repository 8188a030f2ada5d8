"""Reading plain Python pickles without running code from them.

``pickle.load`` imports and calls whatever a file names, so a network pickle can
run anything. :func:`safe_load` resolves only the globals on an allow-list the
caller passes, each mapped to a stand-in of ours that checks its arguments; any
other global, or a persistent id, is refused with a :class:`CheckpointError`
naming it. Stand-ins for the globals that tensor and numpy-scalar pickles use are
here (:data:`TENSOR_GLOBALS`, :data:`NUMPY_SCALAR_GLOBALS`), and so is a stand-in
for NVlabs' ``torch_utils.persistence`` objects (:func:`persistent_record`), which
keeps their state and drops the module source they would otherwise execute.

The unpickler is the pure-Python one so that it can also take over BUILD, the one
opcode that calls a method of an object already built (``__setstate__``, or
``__dict__`` updates): it accepts BUILD only on a numpy dtype whose state is the
standard one of a plain numeric type, and never applies it.
"""

from __future__ import annotations

import collections
import hashlib
import io
import math
import pickle
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import attrs
import numpy as np
import torch

from ..errors import CheckpointError

Globals = Mapping[str, Callable[..., Any]]  # "module.name" as the pickle spells it -> our stand-in

_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)", re.IGNORECASE)


class UnsafePickleError(pickle.UnpicklingError):
    """Raised by stand-ins for arguments they will not accept; :func:`safe_load` adds the path."""


# -- the unpickler --------------------------------------------------------------------


def safe_load(path: str | Path, allowed: Globals) -> Any:
    """Unpickle ``path`` resolving only the globals in ``allowed`` (to their stand-ins)."""
    path = Path(path)
    try:
        with open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's TypedStorage deprecation notes
            return RestrictedUnpickler(f, allowed, path).load()
    except CheckpointError:
        raise
    except OSError as exc:
        raise CheckpointError(path, f"cannot open the file ({exc.strerror or exc})") from None
    except Exception as exc:  # truncated data, a stand-in refusing its arguments, ...
        raise CheckpointError(path, f"cannot read the pickle safely: {type(exc).__name__}: {exc}") from None


class RestrictedUnpickler(pickle._Unpickler):  # the pure-Python one, whose opcodes can be overridden
    """An unpickler whose only callables are the stand-ins on its allow-list.

    Every way a pickle reaches a callable (GLOBAL, STACK_GLOBAL, INST) goes through
    :meth:`find_class`, so REDUCE, NEWOBJ and OBJ can only call stand-ins, or the
    builtin types an allow-list names (``dict``, ``OrderedDict``). BUILD, which
    would call ``__setstate__`` of whatever it is given (a tensor's re-points it at
    any storage, a record's skips its checks), is refused except as the no-op state
    of a plain numeric numpy dtype; extension codes, never used by these formats and
    resolved through a process-wide cache, are refused.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: Any, allowed: Globals, path: str | Path):
        super().__init__(file)
        self._allowed = {canonical_name(k): v for k, v in allowed.items()}
        self._path = Path(path)

    def find_class(self, module: str, name: str) -> Any:
        key = canonical_name(f"{module}.{name}")
        standin = self._allowed.get(key)
        if standin is None:
            raise CheckpointError(self._path, f"the pickle asks for the global `{module}.{name}`, which is not on this "
                                              "format's allow-list; dse refuses to run code from checkpoint files")
        return standin if isinstance(standin, type) else _Sealed(key, standin)

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError(self._path, f"the pickle refers to an external object ({str(pid)[:60]!r}); "
                                          "plain network pickles have none")

    def load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if not isinstance(target, np.dtype):
            raise UnsafePickleError(f"the pickle tries to modify {_described(target)} by setting its state (BUILD); "
                                    "only numpy dtypes take one")
        if not _standard_dtype_state(state):
            raise UnsafePickleError(f"numpy dtype {target.str!r} comes with a state other than a plain numeric "
                                    f"type's ({_preview(state)}); refused")
        # the state only restates what numpy_dtype already checked: nothing to apply (the dtype is numpy's shared one)

    dispatch[pickle.BUILD[0]] = load_build

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack[-1]
        if not isinstance(cls, type) or not isinstance(args, tuple):  # the C unpickler's checks
            raise UnsafePickleError(f"NEWOBJ on {_described(cls)}, which is not a class")
        self.stack[-1] = cls.__new__(cls, *args)

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        if not isinstance(cls, type) or not isinstance(args, tuple) or not isinstance(kwargs, dict):
            raise UnsafePickleError(f"NEWOBJ_EX on {_described(cls)}, which is not a class")
        self.append(cls.__new__(cls, *args, **kwargs))

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def load_extension(self) -> None:
        raise CheckpointError(self._path, "the pickle names a global by extension code (copyreg), which dse refuses")

    for _code in (pickle.EXT1, pickle.EXT2, pickle.EXT4):
        dispatch[_code[0]] = load_extension
    del _code


def _described(obj: Any) -> str:
    if isinstance(obj, _Sealed):
        return f"`{obj._name}`"
    if isinstance(obj, type):
        return f"`{obj.__module__}.{obj.__qualname__}`"
    name = type(obj).__name__
    return f"{'an' if name[:1] in 'AEIOUaeiou' else 'a'} {name}"


def _preview(obj: Any) -> str:
    """A short description of a state, never the repr of a large object."""
    if type(obj) is tuple:
        return "(" + ", ".join(_preview(v) for v in obj[:9]) + (", ..." if len(obj) > 9 else "") + ")"
    text = repr(obj) if type(obj) in (str, int, float, bool, type(None)) else type(obj).__name__
    return text if len(text) <= 24 else text[:21] + "..."


_NATIVE_ORDER = "<" if sys.byteorder == "little" else ">"
# what numpy's dtype.__reduce__ gives as state for a plain numeric type, but for the byte order:
# (version, byte order, subarray, names, fields, itemsize (-1: implied), alignment (-1: implied), flags)
_PLAIN_DTYPE_STATE = (3, None, None, None, None, -1, -1, 0)


def _standard_dtype_state(state: Any) -> bool:
    if type(state) is not tuple or len(state) != len(_PLAIN_DTYPE_STATE):
        return False
    order = state[1]
    if type(order) is not str or order not in (_NATIVE_ORDER, "|"):
        return False
    return all(type(v) is type(w) and v == w for i, (v, w) in enumerate(zip(state, _PLAIN_DTYPE_STATE)) if i != 1)


def canonical_name(qualified: str) -> str:
    """numpy 2 pickles write ``numpy._core`` where numpy 1 wrote ``numpy.core``: one key for both."""
    return re.sub(r"^numpy\._core\b", "numpy.core", qualified)


class _Sealed:
    """A stand-in function as the pickle sees it: callable, but BUILD cannot rewrite its defaults."""

    __slots__ = ("_name", "_fn")

    def __init__(self, name: str, fn: Callable[..., Any]):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)

    def __setattr__(self, key: str, value: Any) -> None:
        raise UnsafePickleError(f"the pickle tries to modify `{self._name}`")

    def __repr__(self) -> str:
        return f"<stand-in for {self._name}>"


# -- tensors ----------------------------------------------------------------------


def rebuild_tensor(storage: Any, storage_offset: int, size: tuple, stride: tuple, requires_grad: bool = False,
                   backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: a view of a storage we loaded ourselves."""
    if not isinstance(storage, torch.TypedStorage):
        raise UnsafePickleError(f"a tensor is built from a {type(storage).__name__}, not a tensor storage")
    if not (_ints(size) and _ints(stride) and isinstance(storage_offset, int) and storage_offset >= 0):
        raise UnsafePickleError(f"a tensor has an invalid size {size!r}, stride {stride!r} or offset")
    if len(size) != len(stride) or _extent(storage_offset, size, stride) > storage.size():
        raise UnsafePickleError(f"a tensor of size {tuple(size)} reaches past the end of its storage")
    if math.prod(size) > storage.size():  # weights are never broadcast views: a zero stride would fake a huge tensor
        raise UnsafePickleError(f"a tensor of size {tuple(size)} has more elements than its storage ({storage.size()})")
    tensor = torch.empty((0,), dtype=storage.dtype)
    return tensor.set_(storage.untyped(), storage_offset, size, stride)


def _extent(offset: int, size: tuple, stride: tuple) -> int:
    """Elements of storage a view needs (``set_`` would silently grow the storage instead of failing)."""
    if any(n == 0 for n in size):
        return 0
    return offset + 1 + sum((n - 1) * s for n, s in zip(size, stride))


def rebuild_parameter(data: Any, requires_grad: bool = False, backward_hooks: Any = None) -> torch.Tensor:
    """Stand-in for ``torch._utils._rebuild_parameter``: the plain tensor (we never train it here)."""
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError(f"a parameter wraps a {type(data).__name__}, not a tensor")
    return data


def storage_from_bytes(data: Any) -> torch.TypedStorage:
    """Stand-in for ``torch.storage._load_from_bytes``, whose own ``torch.load`` would run anything.

    The bytes are a legacy ``torch.save`` of one storage; ``weights_only=True``
    refuses any global in them that is not a storage or tensor type.
    """
    if not isinstance(data, bytes):
        raise UnsafePickleError(f"a tensor storage is a {type(data).__name__}, not bytes")
    try:
        storage = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _REFUSED_GLOBAL.search(str(exc))
        name = found.group(1) if found else ""
        name = name if "." in name or not name else f"builtins.{name}"  # torch drops the "builtins." it found
        what = f"the global `{name}`" if found else "something other than tensor data"
        raise UnsafePickleError(f"a tensor storage inside it asks for {what}; refused") from None
    if not isinstance(storage, torch.TypedStorage):
        raise UnsafePickleError(f"a tensor storage holds a {type(storage).__name__}")
    return storage


def _ints(values: Any) -> bool:
    return isinstance(values, (tuple, list)) and all(isinstance(v, int) and v >= 0 for v in values)


# -- numpy scalars (e.g. a layer's weight_gain stored as np.float64) --------------------


_NUMERIC_KINDS = ("b", "i", "u", "f", "c")  # bool, signed, unsigned, float, complex


def numpy_dtype(spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """Stand-in for ``numpy.dtype``: a native-order numeric type code ('f8', 'i4', ...), nothing else.

    Refused: object, void/record ('V8', 'f8,i4'), subarray, string and datetime
    dtypes, and non-native byte orders (numpy keeps the order in the BUILD state,
    which :class:`RestrictedUnpickler` checks but never applies).
    """
    if not isinstance(spec, str):
        raise UnsafePickleError(f"a numpy dtype is given as a {type(spec).__name__}, not a type code")
    try:
        dtype = np.dtype(spec)
    except (TypeError, ValueError):
        raise UnsafePickleError(f"numpy dtype {spec[:40]!r} is not a type code numpy knows") from None
    if dtype.hasobject:
        raise UnsafePickleError(f"numpy object dtype {spec[:40]!r} refused")
    if not _plain_numeric(dtype):
        raise UnsafePickleError(f"numpy dtype {spec[:40]!r} is not a plain native-order number type; refused")
    return dtype


def numpy_scalar(dtype: Any, data: Any) -> np.generic:
    """Stand-in for ``numpy.core.multiarray.scalar``: decode the raw bytes of a numeric scalar."""
    if not isinstance(dtype, np.dtype) or not _plain_numeric(dtype) or not isinstance(data, bytes):
        raise UnsafePickleError("a numpy scalar that is not plain numeric data")
    if len(data) != dtype.itemsize:
        raise UnsafePickleError(f"a numpy {dtype.name} scalar of {len(data)} bytes instead of {dtype.itemsize}")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _plain_numeric(dtype: np.dtype) -> bool:
    return (dtype.kind in _NUMERIC_KINDS and dtype.fields is None and dtype.subdtype is None and dtype.isnative
            and not dtype.metadata)


# -- NVlabs persistent objects ----------------------------------------------------------


@attrs.frozen(eq=False)
class PersistentRecord:
    """What a ``torch_utils.persistence`` object holds, kept as data: its class is never built.

    The pickle stores no module name, only the module's whole source; we keep a
    digest of it (to tell code versions apart) and never execute it.
    """

    class_name: str  # e.g. "SynthesisLayer"
    init_args: tuple  # the constructor's recorded positional arguments
    init_kwargs: dict  # ... and keyword arguments
    tensors: dict[str, torch.Tensor]  # parameters and buffers of this object (not of children)
    children: dict[str, "PersistentRecord"]  # sub-modules, by attribute name
    attributes: dict[str, Any]  # other plain fields: resolution, conv_clamp, architecture, ...
    source_sha256: str  # digest of the module source it carried

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Tensors of this object and its children, keyed as ``nn.Module.state_dict`` would."""
        out = {f"{prefix}{k}": v for k, v in self.tensors.items()}
        for name, child in self.children.items():
            out.update(child.state_dict(f"{prefix}{name}."))
        return out


def persistent_record(meta: Any) -> PersistentRecord:
    """Stand-in for ``torch_utils.persistence._reconstruct_persistent_obj``, minus the ``exec``."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
        raise UnsafePickleError("a persistent object without the expected meta fields (type, class_name, state)")
    state, source = meta.get("state"), meta.get("module_src", "")
    if not isinstance(state, dict) or not isinstance(source, str):
        raise UnsafePickleError(f"persistent object {meta['class_name']!r} has no state dict")
    return PersistentRecord(
        class_name=meta["class_name"],
        init_args=tuple(state.get("_init_args", ())),
        init_kwargs=dict(state.get("_init_kwargs", {})),
        tensors=_module_tensors(state),
        children=_module_children(state),
        attributes={k: v for k, v in state.items() if not k.startswith("_")},
        source_sha256=hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest(),
    )


def _module_tensors(state: dict) -> dict[str, torch.Tensor]:
    tensors = {**(state.get("_parameters") or {}), **(state.get("_buffers") or {})}
    bad = [k for k, v in tensors.items() if v is not None and not isinstance(v, torch.Tensor)]
    if bad:
        raise UnsafePickleError(f"parameters or buffers that are not tensors: {bad[:4]}")
    return {k: v for k, v in tensors.items() if v is not None}


def _module_children(state: dict) -> dict[str, PersistentRecord]:
    children = state.get("_modules") or {}
    bad = [k for k, v in children.items() if v is not None and not isinstance(v, PersistentRecord)]
    if bad:
        raise UnsafePickleError(f"sub-modules that are not persistent objects: {bad[:4]}")
    return {k: v for k, v in children.items() if v is not None}


def latin1_bytes(text: Any, encoding: Any = "latin1") -> bytes:
    """Stand-in for ``_codecs.encode``, which protocol-2 pickles use to spell a bytes object."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("_codecs.encode is allowed only to turn a str into latin-1 bytes")
    return text.encode("latin-1")


# What protocol 2 and 3 pickles (Python 3.7's default) write for plain values: a module's
# ``_non_persistent_buffers_set`` as ``set(...)``, and bytes (protocol 2) through _codecs.encode.
BUILTIN_GLOBALS: dict[str, Callable[..., Any]] = {
    "builtins.set": set,
    "__builtin__.set": set,
    "_codecs.encode": latin1_bytes,
}

TENSOR_GLOBALS: dict[str, Callable[..., Any]] = {
    "collections.OrderedDict": collections.OrderedDict,
    "torch._utils._rebuild_tensor_v2": rebuild_tensor,
    "torch._utils._rebuild_parameter": rebuild_parameter,
    "torch.storage._load_from_bytes": storage_from_bytes,
}
NUMPY_SCALAR_GLOBALS: dict[str, Callable[..., Any]] = {
    "numpy.core.multiarray.scalar": numpy_scalar,
    "numpy.dtype": numpy_dtype,
}
# Every stand-in above: what a pickle of plain data (tensors, numpy scalars, sets, bytes) may name.
PICKLE_DATA_GLOBALS: dict[str, Callable[..., Any]] = {**BUILTIN_GLOBALS, **TENSOR_GLOBALS, **NUMPY_SCALAR_GLOBALS}
