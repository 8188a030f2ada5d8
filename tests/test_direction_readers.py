"""load_direction: every direction file format people hold, read to the right latent, without running code."""

import importlib.util
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dse_core import load_generator
from dse_core.editing import Direction, load_direction
from dse_core.errors import CheckpointError, DamagedFileError, DseError

FIXTURES = Path(__file__).parent / "fixtures" / "directions"


def _script():
    spec = importlib.util.spec_from_file_location("make_directions", FIXTURES / "make_directions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make = _script()


@pytest.fixture
def written(tmp_path):
    """Each fixture as the script writes it, in tmp_path: name -> (path, the values written)."""
    return make.write_all(tmp_path / "directions")


@pytest.fixture(scope="module")
def stylegan2():
    return load_generator("demo:stylegan2")  # ws (8, 64)


@pytest.fixture(scope="module")
def pggan():
    return load_generator("demo:pggan")  # z (64,)


def same(tensor, expected):
    """Values equal to what was written (as float32, the dtype directions are kept in)."""
    expected = torch.as_tensor(np.asarray(expected, dtype=np.float32))
    assert tensor.shape == expected.shape
    assert torch.equal(tensor, expected)


# -- each format, read to the right latent, shape, std and layers ------------------------------------------


def test_the_script_sizes_fit_the_demo_generators(stylegan2, pggan):
    assert stylegan2.latent_shapes["ws"] == (make.NUM_WS, make.W_DIM)
    assert pggan.latent_shapes["z"] == (make.Z_DIM,)


@pytest.mark.parametrize("name", sorted(make.WRITERS))
def test_committed_fixtures_are_what_the_script_writes(written, name):
    fresh, kept = load_direction(written[name][0]), load_direction(FIXTURES / written[name][0].name)
    torch.testing.assert_close(fresh.vectors, kept.vectors)  # not bit-exact: the factor's SVD varies with threads
    assert (fresh.latent, fresh.layers, fresh.names) == (kept.latent, kept.layers, kept.names)
    assert fresh.source == kept.source
    assert (fresh.std is None and kept.std is None) or torch.equal(fresh.std, kept.std)


def test_interfacegan_w_boundary(written):
    path, values = written["interfacegan_w"]
    d = load_direction(path)
    assert values["boundary"].dtype == np.float64 and np.isclose(np.linalg.norm(values["boundary"]), 1)
    assert (d.latent, len(d), d.shape, d.std, d.layers) == ("ws", 1, (64,), None, None)
    same(d.vectors, values["boundary"])
    assert d.names == ("stylegan_ffhq_smile",) and d.source["format"] == "interfacegan"


def test_interfacegan_z_boundary(written):
    path, values = written["interfacegan_z"]
    d = load_direction(path)
    assert (d.latent, d.shape, d.source["latent_from"]) == ("z", (64,), "file")
    same(d.vectors, values["boundary"])


@pytest.mark.parametrize("name, latent", [
    ("stylegan_ffhq_smile_w_boundary.npy", "ws"),
    ("stylegan_ffhq_smile_wp_boundary.npy", "ws"),
    ("stylegan_ffhq_smile_boundary.npy", "z"),  # InterFaceGAN's released StyleGAN boundaries default to z
    ("smile_z_boundary.npy", "z"),
    ("boundary.npy", "ws"),  # train_boundary.py's output name says nothing: w, what inversion edits
    ("smile.npy", "ws"),
])
def test_interfacegan_file_names_say_the_space(tmp_path, name, latent):
    np.save(tmp_path / name, make._unit(np.ones((1, 64))))
    assert load_direction(tmp_path / name).latent == latent


def test_a_name_that_says_nothing_takes_the_space_from_the_generator_or_the_argument(tmp_path, stylegan2, pggan):
    np.save(tmp_path / "boundary.npy", make._unit(np.ones((1, 64))))
    assert load_direction(tmp_path / "boundary.npy", pggan).latent == "z"
    assert load_direction(tmp_path / "boundary.npy", stylegan2).latent == "ws"
    d = load_direction(tmp_path / "boundary.npy", latent="z")
    assert (d.latent, d.source["latent_from"]) == ("z", "argument")
    assert load_direction(FIXTURES / "stylegan_ffhq_smile_w_boundary.npy", latent="z").latent == "z"  # it wins


def test_idinvert_boundary(written):
    path, values = written["idinvert"]
    with pytest.raises(ValueError, match="allow_pickle"):
        np.load(path)  # it really is a pickle
    d = load_direction(path)
    assert (d.latent, len(d), d.shape, d.layers, d.std) == ("ws", 1, (8, 64), (2, 3, 4), None)
    same(d.vectors, values["boundary"])
    assert d.source["format"] == "idinvert" and d.source["meta_data"] == {"manipulate_layers": [2, 3, 4]}


@pytest.mark.parametrize("protocol", [2, 3, 4])  # np.save wrote protocol 2 (numpy < 1.17), then 3, now 4
def test_idinvert_boundary_pickled_by_older_numpy(tmp_path, written, protocol):
    path, values = written["idinvert"]
    header = path.read_bytes()[: path.read_bytes().index(b"\n") + 1]
    (tmp_path / "old.npy").write_bytes(header + pickle.dumps(np.asanyarray(values, dtype=object), protocol=protocol))
    d = load_direction(tmp_path / "old.npy")
    assert d.layers == (2, 3, 4)
    same(d.vectors, values["boundary"])


@pytest.mark.parametrize("layers, expected", [("2-4,6", (2, 3, 4, 6)), (5, (5,)), ("", None), (None, None),
                                              (np.array([4, 1]), (1, 4))])
def test_idinvert_manipulate_layers_as_it_may_write_them(tmp_path, layers, expected):
    meta = {"manipulate_layers": layers, "distance": np.float64(3.0), "trunc": np.int64(8)}
    np.save(tmp_path / "b.npy", {"boundary": np.ones((1, 8, 64), np.float64), "meta_data": meta}, allow_pickle=True)
    d = load_direction(tmp_path / "b.npy")
    assert d.layers == expected
    assert d.source["meta_data"]["distance"] == 3.0 and d.source["meta_data"]["trunc"] == 8
    saved = d.save(tmp_path / "again")  # the kept metadata is JSON
    assert json.loads(saved.with_suffix(".json").read_text())["source"]["meta_data"]["distance"] == 3.0


def test_a_direction_saved_on_cuda_reads_on_the_cpu(written):
    path, values = written["e4e_cuda"]
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):  # what the file is: torch.load alone would not read it here
            torch.load(path, weights_only=True)
    d = load_direction(path)
    assert (d.latent, len(d), d.shape, d.vectors.device.type) == ("ws", 1, (64,), "cpu")
    same(d.vectors, values["direction"])
    assert d.names == ("age",) and d.source["format"] == "tensor"


def test_a_per_layer_tensor_is_a_per_layer_ws_direction(written):
    path, values = written["e4e_wplus"]
    d = load_direction(path)
    assert (d.latent, len(d), d.shape, d.source["latent_from"]) == ("ws", 1, (8, 64), "file")
    same(d.vectors, values["direction"])


@pytest.mark.parametrize("shape, count", [((64,), 1), ((1, 64), 1), ((3, 64), 3), ((1, 1, 64), 1)])
def test_bare_tensor_shapes(tmp_path, shape, count):
    torch.save(torch.randn(shape), tmp_path / "d.pt")
    d = load_direction(tmp_path / "d.pt")
    assert (len(d), d.shape) == (count, (64,))


def test_e4e_pca(written, tmp_path):
    path, values = written["e4e_pca"]
    d = load_direction(path)
    assert (d.latent, len(d), d.shape, d.source["format"]) == ("ws", 4, (64,), "e4e-pca")
    same(d.vectors, values["comp"])
    same(d.std, values["std"])
    torch.save({**values, "comp": values["comp"][:, None]}, tmp_path / "pca.pt")  # comp as GANSpace shapes it
    same(load_direction(tmp_path / "pca.pt").vectors, values["comp"])


def test_ganspace_w(written):
    path, values = written["ganspace_w"]
    d = load_direction(path)
    assert (d.latent, len(d), d.shape, d.source["latent_from"]) == ("ws", 4, (64,), "file")
    same(d.vectors, values["lat_comp"][:, 0])
    same(d.std, values["lat_stdev"])


def test_ganspace_z(written):
    path, values = written["ganspace_z"]
    d = load_direction(path)
    assert (d.latent, len(d), d.shape) == ("z", 4, (64,))
    same(d.vectors, values["lat_comp"][:, 0])
    same(d.std, values["lat_stdev"])


def test_ganspace_renamed_takes_the_space_from_the_generator(written, tmp_path, stylegan2, pggan):
    shutil.copy(written["ganspace_z"][0], tmp_path / "components.npz")
    assert load_direction(tmp_path / "components.npz").latent == "ws"  # nothing says: w, as GANSpace on StyleGAN
    assert load_direction(tmp_path / "components.npz", pggan).latent == "z"
    assert load_direction(tmp_path / "components.npz", stylegan2).latent == "ws"
    assert load_direction(tmp_path / "components.npz", latent="z").latent == "z"


def test_rosinality_factor_components_are_the_columns(written):
    path, values = written["rosinality_factor"]
    d = load_direction(path)
    assert (d.latent, len(d), d.shape, d.std) == ("ws", 64, (64,), None)
    same(d.vectors, values["eigvec"].T)
    same(d.component(3).vectors[0], values["eigvec"][:, 3])  # apply_factor.py's eigvec[:, index]
    assert d.source == {"format": "rosinality-sefa", "file": "factor.pt", "latent_from": "file",
                        "ckpt": "checkpoint/stylegan2-demo.pt"}


def test_dse_own_file_and_folder(written):
    path, values = written["dse_own"]
    for where in (path, path.parent / "dirs"):
        d = load_direction(where)
        assert torch.equal(d.vectors, values["direction"].vectors) and torch.equal(d.std, values["direction"].std)
        assert (d.latent, d.names) == ("ws", ("pc0", "pc1", "pc2", "pc3"))
    with pytest.raises(DseError, match="does not apply"):
        load_direction(path, latent="z")


# -- checked against the generator ---------------------------------------------------------------------------


FITS = {"stylegan_ffhq_smile_w_boundary.npy": "stylegan2", "pggan_celebahq_smile_boundary.npy": "pggan",
        "idinvert_expression.npy": "stylegan2", "pose_wplus.pt": "stylegan2", "factor.pt": "stylegan2",
        "stylegan2-demo_style_ipca_c4_n1000_w.npz": "stylegan2", "proggan-demo_layer0_pca_c4_n1000.npz": "pggan",
        "components.safetensors": "stylegan2", "dirs": "stylegan2"}


@pytest.mark.parametrize("name", sorted(FITS))
def test_each_fits_its_generator_and_is_refused_by_the_other(name, stylegan2, pggan):
    fits, other = (stylegan2, pggan) if FITS[name] == "stylegan2" else (pggan, stylegan2)
    assert load_direction(FIXTURES / name, fits).latent == fits.latent_names[0]
    with pytest.raises(DseError) as refused:
        load_direction(FIXTURES / name, other)
    message = refused.value.message
    assert name in message and f"in {fits.latent_names[0]}" in message  # what it is
    assert f"{other.family} generator" in message and str(other.latent_shapes[other.latent_names[0]]) in message


def test_a_z_boundary_is_refused_for_stylegan2_with_a_hint(stylegan2):
    with pytest.raises(DseError, match=r"lives in z .* ws \(8, 64\)") as refused:
        load_direction(FIXTURES / "pggan_celebahq_smile_boundary.npy", stylegan2)
    assert "_w_boundary" in refused.value.hint


def test_a_512_wide_direction_is_refused_for_the_64_wide_demo(tmp_path, stylegan2):
    np.save(tmp_path / "stylegan_ffhq_smile_w_boundary.npy", make._unit(np.ones((1, 512))))  # InterFaceGAN's size
    with pytest.raises(DseError, match=r"shape \(512,\) in ws .* takes ws as \(8, 64\) \(or one w of \(64,\)\)"):
        load_direction(tmp_path / "stylegan_ffhq_smile_w_boundary.npy", stylegan2)


def test_idinvert_layers_past_the_generator_are_refused(tmp_path, stylegan2):
    meta = {"manipulate_layers": "6-11"}
    np.save(tmp_path / "b.npy", {"boundary": np.ones((1, 64)), "meta_data": meta}, allow_pickle=True)
    with pytest.raises(DseError, match=r"edits layers \[6, 7, 8, 9, 10, 11\].* 8 ws"):
        load_direction(tmp_path / "b.npy", stylegan2)


# -- malicious files: refused, nothing run -------------------------------------------------------------------


def test_the_malicious_fixtures_are_armed(tmp_path):
    """What the refusal tests guard against: the ordinary loaders run the command."""
    np.load(make.write_malicious_npy(tmp_path / "a.npy", tmp_path / "ran_npy"), allow_pickle=True)
    torch.load(make.write_malicious_pt(tmp_path / "a.pt", tmp_path / "ran_pt"), weights_only=False)
    assert (tmp_path / "ran_npy").exists() and (tmp_path / "ran_pt").exists()


@pytest.mark.parametrize("writer, name", [("write_malicious_npy", "smile_w_boundary.npy"),
                                          ("write_malicious_pt", "pose.pt")])
def test_a_malicious_file_is_refused_and_runs_nothing(tmp_path, writer, name):
    marker = tmp_path / "ran"
    path = getattr(make, writer)(tmp_path / name, marker)
    with pytest.raises(CheckpointError) as refused:
        load_direction(path)
    assert name in str(refused.value) and f"{os.system.__module__}.system" in str(refused.value)
    assert not marker.exists()


def test_a_pickled_array_of_a_non_numeric_dtype_is_refused(tmp_path):
    np.save(tmp_path / "b.npy", {"boundary": np.zeros(2, "M8[s]")}, allow_pickle=True)
    with pytest.raises(CheckpointError, match="b.npy.*refused"):
        load_direction(tmp_path / "b.npy")


def test_an_npz_with_a_pickled_member_is_refused(tmp_path):
    np.savez(tmp_path / "c.npz", lat_comp=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="c.npz.*pickled"):
        load_direction(tmp_path / "c.npz")


def test_a_pickle_that_is_not_an_array_after_an_npy_header_is_refused(tmp_path, written):
    path = written["idinvert"][0]
    head = path.read_bytes()[: path.read_bytes().index(b"\n") + 1]
    (tmp_path / "x.npy").write_bytes(head + pickle.dumps({"boundary": 1}, protocol=4))
    with pytest.raises(CheckpointError, match="x.npy.*not an array"):
        load_direction(tmp_path / "x.npy")


# -- damaged and unknown files ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(set(make.WRITERS) - {"dse_own"}) + ["dse_own"])
def test_a_truncated_file_is_named(written, name):
    path = written[name][0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DseError) as refused:
        load_direction(path)
    assert path.name in refused.value.message and "\n" not in refused.value.message


def test_an_empty_file_is_named(tmp_path):
    (tmp_path / "e.npy").write_bytes(b"")
    with pytest.raises(DamagedFileError, match="e.npy.*empty"):
        load_direction(tmp_path / "e.npy")


def test_unknown_content_lists_the_formats_read(tmp_path):
    (tmp_path / "smile.npy").write_text("not a direction\n")
    with pytest.raises(DseError) as refused:
        load_direction(tmp_path / "smile.npy")
    message = refused.value.message
    assert "smile.npy" in message and "InterFaceGAN" in message and "GANSpace" in message and "\n" not in message


@pytest.mark.parametrize("content", [{"g_ema": torch.zeros(2)}, [torch.zeros(3)], torch.zeros(2, 3, 4, 5)])
def test_a_torch_file_without_a_direction_is_named(tmp_path, content):
    torch.save(content, tmp_path / "ckpt.pt")
    with pytest.raises(DseError, match="ckpt.pt"):
        load_direction(tmp_path / "ckpt.pt")


def test_non_finite_values_are_refused(tmp_path):
    np.save(tmp_path / "smile_w_boundary.npy", np.full((1, 64), np.nan))
    with pytest.raises(DamagedFileError, match="NaN"):
        load_direction(tmp_path / "smile_w_boundary.npy")


def test_missing_paths_and_bare_folders(tmp_path):
    with pytest.raises(DseError, match="no such file"):
        load_direction(tmp_path / "nothing.npy")
    with pytest.raises(DseError, match="without direction.safetensors"):
        load_direction(tmp_path)
    with pytest.raises(DseError, match="latent 'w'"):
        load_direction(FIXTURES / "factor.pt", latent="w")


def test_directions_are_independent_copies(written):
    """torch_load caches what it read: a direction must not share (or memory-map) that tensor."""
    path = written["e4e_wplus"][0]
    first = load_direction(path)
    first.vectors.zero_()
    assert load_direction(path).vectors.abs().sum() > 0
    assert isinstance(first, Direction)
