"""NVlabs stylegan2-ada-pytorch pickles: reference parity, and pickles made here with the features real ones carry."""

import math
import os
import pickle
import sys
import types

import attrs
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import dse_core
from dse_core.cli import main
from dse_core.errors import CheckpointError
from dse_plugin_stylegan2 import Generator, StyleGAN2Config
from dse_plugin_stylegan2.nvlabs import sniff_nvlabs
from test_stylegan2 import perturbed  # every tensor non-trivial

TOL = 1e-4


def max_diff(a, b):
    return (a - b).abs().max().item()


@pytest.fixture
def nvlabs(fixtures):
    return fixtures / "stylegan2-ada-nvlabs"


def case_diffs(G, cases):
    """Max abs difference to every reference output in the fixture's cases.safetensors."""
    z = cases["z"]
    with torch.no_grad():
        ours = {
            "ws": G.mapping(z),
            "img_z": G(z, noise_mode="const"),
            "ws_trunc": G.mapping(z, truncation_psi=0.7),
            "img_trunc": G(z, truncation_psi=0.7, noise_mode="const"),
            "ws_trunc_cut": G.mapping(z, truncation_psi=0.5, truncation_cutoff=4),
            "img_trunc_cut": G(z, truncation_psi=0.5, truncation_cutoff=4, noise_mode="const"),
            "img_ws_edit": G.synthesis(cases["ws_edit"], noise_mode="const"),
        }
    assert set(ours) | {"z", "ws_edit"} == set(cases)
    return {k: max_diff(v, cases[k]) for k, v in ours.items()}


def test_fixture_pickle_matches_reference(nvlabs):
    G = dse_core.load_generator(nvlabs / "network.pkl")
    assert G.source["format"] == "stylegan2/nvlabs"
    assert G.config == StyleGAN2Config(resolution=32, channels={4: 32, 8: 32, 16: 32, 32: 32}, z_dim=64, w_dim=64,
                                       mapping_layers=2)
    diffs = case_diffs(G, load_file(nvlabs / "cases.safetensors"))
    assert max(diffs.values()) <= TOL, diffs


def test_converted_folder_keeps_parity(nvlabs, tmp_path):
    out = tmp_path / "converted"
    assert main(["convert", str(nvlabs / "network.pkl"), "-o", str(out)]) == 0
    G = dse_core.load_generator(out)
    diffs = case_diffs(G, load_file(nvlabs / "cases.safetensors"))
    assert max(diffs.values()) <= TOL, diffs
    assert G.source["format"] == "stylegan2/nvlabs"
    assert G.source["sha256"] == dse_core.models.hub.sha256_of(nvlabs / "network.pkl")


def test_sniff(nvlabs, fixtures, tmp_path):
    assert sniff_nvlabs(nvlabs / "network.pkl")
    assert not sniff_nvlabs(fixtures / "stylegan2-rosinality" / "checkpoint.pt")
    assert not sniff_nvlabs(tmp_path) and not sniff_nvlabs(tmp_path / "missing.pkl")


# -- pickles written here in NVlabs' format, from our own generator ------------------------------


def _reconstruct_persistent_obj(meta):
    raise AssertionError("never called: the reader must not use NVlabs' reconstruction")


class EasyDict(dict):
    pass


_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"


@pytest.fixture
def nvlabs_names(monkeypatch):
    """Modules named as NVlabs' so that pickle can write their globals (it checks them by importing)."""
    names = {"torch_utils": {}, "torch_utils.persistence": {"_reconstruct_persistent_obj": _reconstruct_persistent_obj},
             "dnnlib": {}, "dnnlib.util": {"EasyDict": EasyDict}}
    for name, contents in names.items():
        module = types.ModuleType(name)
        vars(module).update(contents)
        monkeypatch.setitem(sys.modules, name, module)


class Persistent:
    """Pickles as an NVlabs persistent object does: ``_reconstruct_persistent_obj(meta)``, module source inside."""

    def __init__(self, class_name, source, params=None, buffers=None, children=None, kwargs=None, **attributes):
        self.class_name, self.source, self.attributes = class_name, source, attributes
        self.params, self.buffers = params or {}, buffers or {}
        self.children, self.kwargs = children or {}, kwargs or {}

    def __reduce__(self):
        state = {
            "training": False,
            "_parameters": {k: torch.nn.Parameter(v.detach().clone()) for k, v in self.params.items()},
            "_buffers": {k: v.detach().clone() for k, v in self.buffers.items()},
            "_non_persistent_buffers_set": set(),
            "_modules": self.children,
            **self.attributes,
            "_init_args": (),
            "_init_kwargs": EasyDict(self.kwargs),
        }
        meta = {"type": "class", "version": 6, "module_src": self.source, "class_name": self.class_name, "state": state}
        return _reconstruct_persistent_obj, (meta,)


def to_nvlabs(G, source, num_fp16_res=4, architecture="skip"):
    """Our generator as NVlabs' record tree: up-conv kernels flipped back, filter buffers, recorded kwargs."""
    s, cfg = G.state_dict(), G.config
    clamp = cfg.conv_clamp
    f = torch.tensor(cfg.resample_filter)
    filt = torch.outer(f, f) / torch.outer(f, f).sum()
    fp16_from = max(2 ** (int(math.log2(cfg.resolution)) + 1 - num_fp16_res), 8)

    def fc(prefix, lr=1.0, act="linear"):
        gain = np.float64(lr / math.sqrt(s[f"{prefix}.weight"].shape[1]))
        return Persistent("FullyConnectedLayer", source, params={n: s[f"{prefix}.{n}"] for n in ("weight", "bias")},
                          kwargs={"activation": act, "lr_multiplier": lr}, activation=act, bias_gain=lr, weight_gain=gain)

    def layer(prefix, res, up):
        params = {n: s[f"{prefix}.{n}"] for n in ("weight", "noise_strength", "bias")}
        if up == 2:
            params["weight"] = params["weight"].flip(2, 3)
        return Persistent("SynthesisLayer", source, params=params,
                          buffers={"resample_filter": filt, "noise_const": s[f"{prefix}.noise_const"]},
                          children={"affine": fc(f"{prefix}.affine")},
                          kwargs={"resolution": res, "up": up, "conv_clamp": clamp},
                          resolution=res, up=up, use_noise=True, activation="lrelu", conv_clamp=clamp)

    def block(res):
        p = f"synthesis.b{res}"
        children = {"conv0": layer(f"{p}.conv0", res, 2)} if res > 4 else {}
        children["conv1"] = layer(f"{p}.conv1", res, 1)
        children["torgb"] = Persistent("ToRGBLayer", source, params={n: s[f"{p}.torgb.{n}"] for n in ("weight", "bias")},
                                       children={"affine": fc(f"{p}.torgb.affine")}, conv_clamp=clamp)
        return Persistent("SynthesisBlock", source, params={"const": s[f"{p}.const"]} if res == 4 else {},
                          buffers={"resample_filter": filt}, children=children,
                          kwargs={"conv_clamp": clamp, "use_fp16": res >= fp16_from},
                          resolution=res, architecture=architecture, use_fp16=res >= fp16_from)

    synthesis_kwargs = EasyDict(channel_base=16384, channel_max=512, num_fp16_res=num_fp16_res, conv_clamp=clamp)
    sizes = {"z_dim": cfg.z_dim, "c_dim": cfg.c_dim, "w_dim": cfg.w_dim, "num_ws": G.num_ws}
    layers = {f"fc{i}": fc(f"mapping.fc{i}", cfg.mapping_lr_mul, "lrelu") for i in range(cfg.mapping_layers)}
    if cfg.c_dim:
        layers["embed"] = fc("mapping.embed")
    mapping = Persistent("MappingNetwork", source, buffers={"w_avg": s["mapping.w_avg"]}, children=layers,
                         kwargs={**sizes, "num_layers": cfg.mapping_layers}, num_layers=cfg.mapping_layers, **sizes)
    synthesis = Persistent("SynthesisNetwork", source, children={f"b{r}": block(r) for r in cfg.channels},
                           kwargs=synthesis_kwargs, img_resolution=cfg.resolution, num_ws=G.num_ws)
    image = {"img_resolution": cfg.resolution, "img_channels": cfg.img_channels}
    kwargs = {**sizes, **image, "synthesis_kwargs": synthesis_kwargs, "mapping_kwargs": EasyDict(num_layers=cfg.mapping_layers)}
    return Persistent("Generator", source, children={"mapping": mapping, "synthesis": synthesis}, kwargs=kwargs,
                      **image, **sizes)


CONDITIONAL = StyleGAN2Config(resolution=16, channels={4: 16, 8: 12, 16: 8}, z_dim=12, w_dim=10, c_dim=5,
                              embed_features=7, mapping_layers=3, mapping_features=9, conv_clamp=256.0)


def marker_source(marker):
    """A module source as long as networks.py that, if anyone executed it, would leave a marker file."""
    return f"open({str(marker)!r}, 'w').write('ran')\n" + "# the rest of training/networks.py\n" * 2000


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])  # 3 was Python 3.7's default, when NVlabs released theirs
def test_conditional_clamped_fp16_pickle_is_read_without_running_its_source(tmp_path, nvlabs_names, protocol):
    reference = perturbed(CONDITIONAL)
    with torch.no_grad():
        reference.synthesis.b4.torgb.bias.fill_(400.0)  # beyond conv_clamp=256: the clamp decides the image
    marker = tmp_path / "module-src-ran"
    path = tmp_path / "network-snapshot-000100.pkl"
    snapshot = {"training_set_kwargs": EasyDict(use_labels=True), "G": to_nvlabs(reference, marker_source(marker)),
                "D": None, "augment_pipe": None}  # no G_ema: the reader falls back to G
    path.write_bytes(pickle.dumps(snapshot, protocol=protocol))

    G = dse_core.load_generator(path)
    assert G.config == CONDITIONAL and G.source["format"] == "stylegan2/nvlabs"
    z, c = torch.randn(3, 12), torch.eye(5)[[0, 2, 4]]
    unclamped = Generator(attrs.evolve(CONDITIONAL, conv_clamp=None)).eval()
    unclamped.load_state_dict(reference.state_dict())
    with torch.no_grad():
        assert max_diff(G(z, c), reference(z, c)) <= 1e-5
        assert max_diff(G(z, c, truncation_psi=0.6, truncation_cutoff=2), reference(z, c, 0.6, 2)) <= 1e-5
        assert max_diff(unclamped(z, c), reference(z, c)) > 1  # so the check above covers the clamp
    assert not marker.exists()


def test_non_skip_architectures_are_refused(tmp_path, nvlabs_names):
    path = tmp_path / "resnet.pkl"
    path.write_bytes(pickle.dumps({"G_ema": to_nvlabs(perturbed(CONDITIONAL), "", architecture="resnet")}))
    with pytest.raises(CheckpointError, match="only the 'skip' StyleGAN2 generator architecture.*'resnet'"):
        dse_core.load_generator(path)


class Call:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def test_snapshot_with_a_payload_is_refused_and_nothing_runs(tmp_path, nvlabs_names):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": to_nvlabs(perturbed(CONDITIONAL), ""),
                                   "augment_pipe": Call(os.system, f"touch {marker}")}))
    with pytest.raises(CheckpointError, match=rf"`{os.system.__module__}.system`.*allow-list"):
        dse_core.load_generator(path)
    assert not marker.exists()


def _synthesis_block(record, res):
    return record.children["synthesis"].children[f"b{res}"]


@pytest.mark.parametrize("where, name, value, message", [
    (lambda g: g, "z_dim", torch.ones(2), "recorded z_dim is a Tensor, not a size"),
    (lambda g: g, "img_resolution", "16", "recorded img_resolution is a str, not a size"),
    (lambda g: _synthesis_block(g, 8), "architecture", ["skip"], "SynthesisBlock.architecture is a list, not str"),
    (lambda g: _synthesis_block(g, 8).children["conv1"], "activation", {"lrelu": 1}, "SynthesisLayer.activation is a dict"),
    (lambda g: _synthesis_block(g, 4).children["conv1"], "conv_clamp", [256], "SynthesisLayer.conv_clamp is a list"),
])
def test_attributes_of_the_wrong_type_are_a_checkpoint_error(tmp_path, nvlabs_names, where, name, value, message):
    generator = to_nvlabs(perturbed(CONDITIONAL), "")
    where(generator).attributes[name] = value
    path = tmp_path / "typed.pkl"
    path.write_bytes(pickle.dumps({"G_ema": generator}))
    with pytest.raises(CheckpointError, match=message) as err:
        dse_core.load_generator(path)
    assert err.value.path == path
    assert main(["convert", str(path), "-o", str(tmp_path / "out")]) == 2  # a message, not a traceback


def test_a_wrongly_typed_lr_multiplier_is_a_checkpoint_error(tmp_path, nvlabs_names):
    generator = to_nvlabs(perturbed(CONDITIONAL), "")
    generator.children["mapping"].children["fc0"].kwargs["lr_multiplier"] = [0.01]
    path = tmp_path / "lr.pkl"
    path.write_bytes(pickle.dumps({"G_ema": generator}))
    with pytest.raises(CheckpointError, match="FullyConnectedLayer's lr_multiplier is a list, not a number"):
        dse_core.load_generator(path)


@pytest.mark.parametrize("missing", ["synthesis", "mapping"])
def test_a_generator_without_a_sub_network_says_which(tmp_path, nvlabs_names, missing):
    generator = to_nvlabs(perturbed(CONDITIONAL), "")
    del generator.children[missing]
    path = tmp_path / "partial.pkl"
    path.write_bytes(pickle.dumps({"G_ema": generator}))
    with pytest.raises(CheckpointError, match=f"the generator has no `{missing}` sub-module"):
        dse_core.load_generator(path)


def test_a_void_dtype_scalar_in_a_snapshot_is_refused(tmp_path, nvlabs_names):
    # the review's crash: a void scalar whose BUILD state put a field far out of bounds; the void dtype alone is refused
    generator = to_nvlabs(perturbed(CONDITIONAL), "")
    void = np.frombuffer(b"A" * 8, dtype="V8")[0]
    generator.children["mapping"].children["fc0"].attributes["weight_gain"] = void
    path = tmp_path / "void.pkl"
    path.write_bytes(pickle.dumps({"G_ema": generator}))
    with pytest.raises(CheckpointError, match="numpy dtype 'V8' is not a plain native-order number type"):
        dse_core.load_generator(path)
