"""The restricted unpickler: data comes back, code in the file never runs and what was refused is named."""

import builtins
import collections
import contextlib
import copyreg
import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch

from dse_core.errors import CheckpointError
from dse_core.models.safe_pickle import (
    NUMPY_SCALAR_GLOBALS,
    TENSOR_GLOBALS,
    PersistentRecord,
    persistent_record,
    safe_load,
)

PERSISTENT = "torch_utils.persistence._reconstruct_persistent_obj"
ALLOWED = {**TENSOR_GLOBALS, **NUMPY_SCALAR_GLOBALS, PERSISTENT: persistent_record}


def write_marker_code(marker) -> str:
    return f"open({str(marker)!r}, 'w').write('ran')\n"


class Call:
    """Pickles as ``fn(*args)``: how a malicious file makes the unpickler call something."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


class CallThenBuild(Call):
    """Pickles as ``fn(*args)`` followed by BUILD with ``state``: ``obj.__setstate__(state)`` to an unpickler."""

    def __init__(self, fn, args, state):
        super().__init__(fn, *args)
        self.state = state

    def __reduce__(self):
        return self.fn, self.args, self.state


NUMPY_SCALAR = np.float64(0).__reduce__()[0]  # numpy.core.multiarray.scalar (numpy._core in numpy 2)


def dump(tmp_path, obj, name="evil.pkl"):
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


@pytest.fixture
def nvlabs_persistence(monkeypatch):
    """A stand-in ``torch_utils.persistence`` so pickle can name its global (pickle checks it by importing it)."""

    def _reconstruct_persistent_obj(meta):
        raise AssertionError("never called: the loader must not use the real reconstruction")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    package, module = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")
    module._reconstruct_persistent_obj = _reconstruct_persistent_obj
    package.persistence = module
    monkeypatch.setitem(sys.modules, "torch_utils", package)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", module)
    return _reconstruct_persistent_obj


# -- what must come back --------------------------------------------------------------


def test_tensors_parameters_views_and_numpy_scalars_round_trip(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    data = {"t": base, "view": base[1:, 2:], "tr": base.t(), "p": torch.nn.Parameter(torch.ones(2)),
            "half": torch.ones(3, dtype=torch.float16), "gain": np.float64(0.25), "od": collections.OrderedDict(a=1)}
    back = safe_load(dump(tmp_path, data, "ok.pkl"), ALLOWED)
    for key in ("t", "view", "tr", "p", "half"):
        assert torch.equal(back[key], data[key]) and back[key].dtype == data[key].dtype
    assert back["gain"] == 0.25 and back["od"] == {"a": 1}


def test_persistent_object_becomes_a_record_and_its_source_never_runs(tmp_path, nvlabs_persistence):
    marker = tmp_path / "ran-module-src"
    child = {"type": "class", "version": 6, "module_src": write_marker_code(marker), "class_name": "Layer",
             "state": {"training": False, "_parameters": {"weight": torch.nn.Parameter(torch.ones(2, 3)), "bias": None},
                       "_buffers": {"noise": torch.zeros(4)}, "_modules": {}, "resolution": 8,
                       "_init_args": (3, 2), "_init_kwargs": {"conv_clamp": 256}}}
    parent = {**child, "class_name": "Net", "state": {"_parameters": {}, "_buffers": {},
                                                       "_modules": {"layer": Call(nvlabs_persistence, child)}}}
    rec = safe_load(dump(tmp_path, {"G": Call(nvlabs_persistence, parent)}), ALLOWED)["G"]
    assert isinstance(rec, PersistentRecord) and rec.class_name == "Net"
    layer = rec.children["layer"]
    assert layer.init_args == (3, 2) and layer.init_kwargs == {"conv_clamp": 256} and layer.attributes["resolution"] == 8
    assert sorted(rec.state_dict()) == ["layer.noise", "layer.weight"]
    assert not marker.exists()
    exec(write_marker_code(marker), {})  # control: the source really would have written the marker
    assert marker.exists()


def test_numpy_2_module_names_are_accepted_like_numpy_1_names(tmp_path):
    # numpy 2 pickles say numpy._core.multiarray.scalar; the allow-list spells numpy.core (as old files do)
    assert safe_load(dump(tmp_path, np.float32(1.5)), NUMPY_SCALAR_GLOBALS) == np.float32(1.5)


# -- what must be refused -------------------------------------------------------------------


@pytest.mark.parametrize("attack", ["system", "exec"])
def test_reduce_of_a_dangerous_callable_is_refused_and_nothing_runs(tmp_path, attack):
    marker = tmp_path / "pwned"
    payload = Call(os.system, f"touch {marker}") if attack == "system" else Call(builtins.exec, write_marker_code(marker))
    path = dump(tmp_path, {"G_ema": payload})
    name = f"{os.system.__module__}.system" if attack == "system" else "builtins.exec"
    with pytest.raises(CheckpointError, match=rf"`{name}`.*allow-list"):
        safe_load(path, ALLOWED)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # control: the payload is live
    assert marker.exists()


def test_unexpected_global_is_named(tmp_path):
    path = dump(tmp_path, {"args": types.SimpleNamespace(size=256)})
    with pytest.raises(CheckpointError, match="`types.SimpleNamespace`") as err:
        safe_load(path, ALLOWED)
    assert err.value.path == path


@pytest.mark.parametrize("attack", ["system", "exec"])
def test_code_inside_a_nested_storage_blob_is_refused_and_nothing_runs(tmp_path, attack):
    marker = tmp_path / "pwned-inner"
    payload = Call(os.system, f"touch {marker}") if attack == "system" else Call(builtins.exec, write_marker_code(marker))
    ser = torch.serialization
    sys_info = {"protocol_version": ser.PROTOCOL_VERSION, "little_endian": sys.byteorder == "little",
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    # a legacy torch.save stream whose object is a REDUCE of the payload instead of a storage
    blob = b"".join(pickle.dumps(x, protocol=2) for x in
                    (ser.MAGIC_NUMBER, ser.PROTOCOL_VERSION, sys_info, payload))
    path = dump(tmp_path, {"w": Call(torch.storage._load_from_bytes, blob)})
    name = f"{os.system.__module__}.system" if attack == "system" else "builtins.exec"  # torch's message says `exec`
    with pytest.raises(CheckpointError, match=rf"tensor storage inside it asks for the global `{name}`"):
        safe_load(path, ALLOWED)
    assert not marker.exists()
    with contextlib.suppress(Exception):  # control: the real _load_from_bytes runs the payload (then finds no storage)
        torch.storage._load_from_bytes(blob)
    assert marker.exists()


def test_stand_ins_cannot_be_rewritten_by_build(tmp_path):
    # GLOBAL _rebuild_tensor_v2; BUILD (None, {"__defaults__": ()}): would change our function for later loads
    data = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nN}X\x0c\x00\x00\x00__defaults__)s\x86b."
    path = tmp_path / "build.pkl"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match="tries to modify `torch._utils._rebuild_tensor_v2`"):
        safe_load(path, ALLOWED)


def test_persistent_ids_and_out_of_bounds_tensors_are_refused(tmp_path):
    path = tmp_path / "pid.pkl"
    path.write_bytes(b"\x80\x02X\x03\x00\x00\x00abcQ.")  # BINPERSID
    with pytest.raises(CheckpointError, match="external object"):
        safe_load(path, ALLOWED)
    storage = torch.zeros(2).storage()
    big = Call(torch._utils._rebuild_tensor_v2, storage, 0, (1000,), (1,), False, collections.OrderedDict())
    with pytest.raises(CheckpointError, match="reaches past the end of its storage"):
        safe_load(dump(tmp_path, big), ALLOWED)
    broadcast = Call(torch._utils._rebuild_tensor_v2, storage, 0, (4096, 4096), (0, 0), False, collections.OrderedDict())
    with pytest.raises(CheckpointError, match=r"has more elements than its storage \(2\)"):
        safe_load(dump(tmp_path, broadcast), ALLOWED)


def test_object_dtypes_are_refused(tmp_path):
    path = tmp_path / "obj.pkl"
    path.write_bytes(b"\x80\x02cnumpy\ndtype\nX\x01\x00\x00\x00O\x85R.")
    with pytest.raises(CheckpointError, match="object dtype"):
        safe_load(path, ALLOWED)


def test_a_missing_file_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="cannot open"):
        safe_load(tmp_path / "nope.pkl", ALLOWED)


@pytest.mark.parametrize("scalar", [np.bool_(True), np.int8(-3), np.uint16(7), np.int64(-2**40), np.float16(0.5),
                                    np.complex64(1 - 2j)])
def test_plain_numeric_numpy_scalars_keep_their_type_and_value(tmp_path, scalar):
    back = safe_load(dump(tmp_path, scalar), ALLOWED)
    assert type(back) is type(scalar) and back == scalar


@pytest.mark.parametrize("spec", ["V8", "S8", "U2", "M8[s]", ">f8", "f8,i4", "(2,)f4"])
def test_numpy_dtypes_other_than_native_plain_numbers_are_refused(tmp_path, spec):
    # a void dtype is how a BUILD state gives fields at any offset, which the scalar then reads out of bounds
    path = dump(tmp_path, Call(NUMPY_SCALAR, Call(np.dtype, spec, False, True), b"A" * np.dtype(spec).itemsize))
    with pytest.raises(CheckpointError, match=r"numpy dtype .* not a plain native-order number type"):
        safe_load(path, ALLOWED)


@pytest.mark.parametrize("state", [
    (3, "|", None, ("a",), {"a": (np.dtype("f8"), 0)}, 8, 1, 0),  # fields (a void dtype's state)
    (3, ">", None, None, None, -1, -1, 0),  # another byte order than the data's
    (3, "|", (np.dtype("f8"), (2,)), None, None, 16, 8, 0),  # a subarray
    (4, "<", None, None, None, -1, -1, 0, {"m": 1}),  # metadata
    (3, "<", None, None, None, 1 << 40, -1, 0),
])
def test_a_dtype_state_other_than_a_plain_number_s_is_refused_and_never_applied(tmp_path, state):
    dtype = CallThenBuild(np.dtype, ("f8", False, True), state)
    path = dump(tmp_path, Call(NUMPY_SCALAR, dtype, bytes(8)))
    with pytest.raises(CheckpointError, match=r"numpy dtype '<f8' comes with a state other than a plain numeric"):
        safe_load(path, ALLOWED)
    assert np.dtype("f8").fields is None and np.dtype("f8").isnative  # numpy's shared dtype is untouched


def test_a_numpy_scalar_must_have_its_dtype_s_size(tmp_path):
    with pytest.raises(CheckpointError, match="float64 scalar of 16 bytes instead of 8"):
        safe_load(dump(tmp_path, Call(NUMPY_SCALAR, np.dtype("f8"), bytes(16))), ALLOWED)


def test_build_on_a_tensor_is_refused(tmp_path):
    # Tensor.__setstate__ would set_() the tensor to 4096 elements of a 2-element storage, past our bounds check
    storage = torch.zeros(2).storage()
    tensor = CallThenBuild(torch._utils._rebuild_tensor_v2, (storage, 0, (2,), (1,), False, collections.OrderedDict()),
                           (storage, 0, (4096,), (1,)))
    with pytest.raises(CheckpointError, match=r"tries to modify a Tensor by setting its state \(BUILD\)"):
        safe_load(dump(tmp_path, {"w": tensor}), ALLOWED)


def test_build_on_a_persistent_record_is_refused(tmp_path, nvlabs_persistence):
    meta = {"type": "class", "class_name": "Generator", "module_src": "",
            "state": {"_parameters": {}, "_buffers": {}, "_modules": {}}}
    forged = {"class_name": "Other", "tensors": {"w": 5}, "children": {"x": "not a record"}}  # skips persistent_record
    path = dump(tmp_path, {"G_ema": CallThenBuild(nvlabs_persistence, (meta,), forged)})
    with pytest.raises(CheckpointError, match="tries to modify a PersistentRecord"):
        safe_load(path, ALLOWED)


def test_newobj_of_a_non_class_and_extension_codes_are_refused(tmp_path):
    path = tmp_path / "newobj.pkl"
    path.write_bytes(b"\x80\x02X\x01\x00\x00\x00a)\x81.")  # NEWOBJ with the string 'a' as the class
    with pytest.raises(CheckpointError, match="NEWOBJ on a str"):
        safe_load(path, ALLOWED)
    code = 0x7FFFFFF0
    copyreg.add_extension("builtins", "set", code)
    try:
        path.write_bytes(b"\x80\x02\x84" + code.to_bytes(4, "little") + b")R.")  # EXT4 (builtins.set) ()
        assert pickle.loads(path.read_bytes()) == set()  # control: also puts `set` in copyreg's process-wide cache
        with pytest.raises(CheckpointError, match="extension code"):  # ... which must not bypass the allow-list
            safe_load(path, ALLOWED)
    finally:
        copyreg.remove_extension("builtins", "set", code)
