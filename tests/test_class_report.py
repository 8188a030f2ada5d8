"""Classes by name (matching, close matches, indices) and the class `dse invert` reports for each image:
metrics.json, metrics.csv, the printed table and the grid's captions, with the toy BigGAN of toy_families.py."""

import csv
import json

import attrs
import numpy as np
import pytest
import torch
from PIL import Image

from dse_core import Encoder, Inverter
from dse_core.cli import main
from dse_core.data import load_image
from dse_core.errors import DseError, UnknownNameError
from dse_core.images import caption_height, make_grid, save_image
from dse_core.invert import invert_files
from dse_core.latents import read_latents
from dse_core.metrics import format_table, summarize
from dse_core.testing import host
from toy_families import COND, classifying_plan, make_cond

NAMES = ("golden retriever", "sulphur-crested cockatoo", "Cardigan", "cardigan")


@pytest.fixture
def G():
    return make_cond()  # c_dim 4: "zero" .. "three"


@pytest.fixture
def E(G):
    """An untrained classifying encoder (z and class heads) whose class head is sharpened: confident, varied guesses."""
    torch.manual_seed(5)
    E = Encoder(attrs.evolve(classifying_plan(G), fixed_latents={"truncation": 1.0})).eval()
    with torch.no_grad():
        E.class_head.fc0.weight.mul_(8)
    return E


@pytest.fixture
def inputs(G, tmp_path):
    """Five images written as PNGs, and the tensors dse reads back from them."""
    folder = tmp_path / "in"
    with torch.no_grad():
        x = G(torch.randn(5, G.z_dim), G.sample_c(5)).clamp(-1, 1)
    for i, image in enumerate(x):
        save_image(image, folder / f"img{i}.png")
    return folder, torch.stack([load_image(folder / f"img{i}.png", G.resolution).tensor for i in range(5)])


# -- names ----------------------------------------------------------------------------------------------

def test_class_names_match_case_underscores_hyphens_and_spaces(G):
    G.class_names = NAMES
    wanted = {"golden retriever": 0, "Golden_Retriever": 0, "GOLDEN-retriever": 0, " golden  retriever ": 0,
              "sulphur_crested_cockatoo": 1, "Sulphur Crested Cockatoo": 1, "Cardigan": 2, "cardigan": 3}
    assert G.class_vector(list(wanted)).argmax(dim=1).tolist() == list(wanted.values())
    assert torch.equal(G.class_vector(["golden_retriever", "3"]), torch.eye(4)[[0, 3]])


def test_a_name_matching_two_classes_only_loosely_is_ambiguous(G):
    G.class_names = NAMES
    with pytest.raises(DseError, match=r"class 'CARDIGAN' is ambiguous: 2 'Cardigan', 3 'cardigan'") as err:
        G.class_vector(["CARDIGAN"])
    assert err.value.hint == "give the exact name or the index"


def test_an_unknown_name_suggests_close_names_and_the_index_range(G):
    G.class_names = NAMES
    with pytest.raises(UnknownNameError) as err:
        G.class_vector(["Golden_Retriver"])
    assert str(err.value).startswith("unknown toy-biggan class 'Golden_Retriver'; did you mean 'golden retriever'?")
    assert err.value.hint == "or give the class index 0..3"
    with pytest.raises(UnknownNameError, match="did you mean 'sulphur-crested cockatoo'"):
        G.class_vector(["cockatoo"])  # a word of the name
    G.class_names = None
    with pytest.raises(UnknownNameError, match=r"\(known: none\)") as err:
        G.class_vector(["two"])
    assert err.value.hint == "the toy-biggan generator's classes have no names: give the class index 0..3"


def test_long_lists_of_known_names_are_counted_not_listed():
    known = [f"class {i}" for i in range(40)]
    message = str(UnknownNameError("thing", "clas 7", known))
    assert message.startswith("unknown thing 'clas 7'; did you mean ") and message.endswith("(40 known)")
    assert str(UnknownNameError("thing", "x", known[:3])).endswith("(known: class 0, class 1, class 2)")


def test_index_strings_work_and_out_of_range_indices_name_the_range(G):
    assert G.class_vector(["0", "3", 2]).argmax(dim=1).tolist() == [0, 3, 2]
    for bad in ("4", "-1", 7):
        with pytest.raises(DseError, match=rf"class {int(bad)}: the toy-biggan generator has classes 0\.\.3$"):
            G.class_vector([bad])


# -- what inversion reports ---------------------------------------------------------------------------------

def test_the_inversion_exposes_the_encoders_class_probabilities(G, E, inputs):
    _, x = inputs
    with torch.no_grad():
        probs = E(x)["c"]
    predicted = Inverter(G, E)(x)
    assert torch.equal(predicted.class_probs, probs) and torch.equal(predicted.latents["c"], probs)
    given = G.class_vector(["one"] * 5)
    told = Inverter(G, E)(x, c=given)
    assert torch.equal(told.class_probs, probs)  # E's opinion, still there
    assert torch.equal(told.latents["c"], given)  # but the given class is the one decoded


def test_a_refined_class_is_the_one_reported(G, E, inputs):
    from dse_core.refine import make_refinement

    _, x = inputs
    refined = Inverter(G, E, refinement=make_refinement(method="latents", steps=3, lr=0.5))(x)
    with torch.no_grad():
        probs = E(x)["c"]
    assert torch.equal(refined.class_probs, refined.latents["c"])  # what G decoded
    assert (refined.class_probs - probs).abs().max() > 1e-3  # and not E's first guess
    assert torch.allclose(refined.class_probs.sum(dim=1), torch.ones(5))


def test_metrics_json_records_the_predicted_class_of_each_image(G, E, inputs, tmp_path):
    folder, x = inputs
    with torch.no_grad():
        probs = E(x)["c"]  # computed here, not by dse
    assert len(set(probs.argmax(dim=1).tolist())) > 1  # the images differ in class: a fixed answer would fail
    invert_files([folder], Inverter(G, E), tmp_path / "out", progress=False, log=lambda m: None)
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert "class: the class: given (--class), else the encoder's most probable class" in report["definitions"]
    for row in report["images"]:
        i = int(row["output"].removeprefix("img"))
        entry = row["class"]
        index = int(probs[i].argmax())
        assert entry["index"] == index and entry["name"] == G.class_names[index] and entry["given"] is False
        assert entry["probability"] == pytest.approx(float(probs[i, index]), abs=1e-6)
        top = entry["top5"]
        assert len(top) == 4  # min(5, c_dim)
        assert [t["index"] for t in top] == probs[i].argsort(descending=True).tolist()
        assert [t["probability"] for t in top] == sorted((t["probability"] for t in top), reverse=True)
        assert top[0] == {"index": index, "name": entry["name"], "probability": entry["probability"]}
        assert sum(t["probability"] for t in top) <= 1 + 1e-6
        assert [t["name"] for t in top] == [G.class_names[t["index"]] for t in top]
        latents = read_latents(tmp_path / "out" / "latents" / f"{row['output']}.safetensors")
        assert int(latents.tensors["c"].argmax()) == index
    rows = list(csv.DictReader((tmp_path / "out" / "metrics.csv").open()))
    assert [int(r["class"]) for r in rows] == [r["class"]["index"] for r in report["images"]]
    assert [r["class_name"] for r in rows] == [r["class"]["name"] for r in report["images"]]


def test_a_given_class_is_marked_given_and_the_encoders_guess_is_kept(G, E, inputs, tmp_path):
    folder, x = inputs
    with torch.no_grad():
        probs = E(x)["c"]
    invert_files([folder], Inverter(G, E), tmp_path / "out", c=G.class_vector(["two"]), progress=False,
                 log=lambda m: None)
    for row in json.loads((tmp_path / "out" / "metrics.json").read_text())["images"]:
        i = int(row["output"].removeprefix("img"))
        entry = row["class"]
        assert (entry["index"], entry["name"], entry["given"]) == (2, "two", True)
        assert entry["probability"] == pytest.approx(float(probs[i, 2]), abs=1e-6)  # E's belief in the given class
        assert entry["top5"][0]["index"] == int(probs[i].argmax())


def test_the_grid_captions_each_reconstruction_with_its_class(G, E, inputs, tmp_path):
    folder, x = inputs
    invert_files([folder], Inverter(G, E), tmp_path / "out", progress=False, log=lambda m: None)
    grid = torch.from_numpy(np.array(Image.open(tmp_path / "out" / "grid.png"))).float()
    strip, cell = caption_height(), 16 + 2
    plain = make_grid(torch.zeros(10, 3, 16, 16), nrow=8)
    assert grid.shape == (2 * (cell + strip) + 2, plain.shape[2], 3)  # 10 images in rows of 8, a strip under each
    assert plain.shape[1] == 2 * cell + 2
    under = grid[2 + 16 : 2 + 16 + strip]  # the first row's captions
    for col in range(8):
        left = 2 + col * cell
        text = under[:, left : left + 16]
        if col % 2:  # a reconstruction: its class index in white
            assert text.max() > 200
        else:  # an input: no caption, black
            assert text.max() == 0


def test_captions_are_drawn_and_blank_labels_are_not():
    images = torch.zeros(2, 1, 32, 32)
    labelled = make_grid(images, nrow=2, labels=["7 seven", None])
    assert labelled.shape == (1, 2 + 32 + caption_height() + 2, 2 + 2 * 34)
    strip = labelled[0, 34 : 34 + caption_height()]
    assert strip[:, 2:34].max() > 0.5 and strip[:, 36:68].max() == -1  # white (anti-aliased) text; black


def test_an_unconditional_table_has_no_class_column():
    rows = [{"output": "a", "psnr": 20.0}, {"output": "b", "psnr": 22.0}]
    assert "class" not in format_table(summarize(rows), rows=rows)
    rows[0]["class"] = {"index": 207, "name": "golden retriever", "probability": 0.834, "given": False}
    rows[1]["class"] = {"index": 2, "name": None, "probability": None, "given": True}
    lines = format_table(summarize(rows), rows=rows).splitlines()
    assert lines[0].endswith("  class")
    assert lines[1].endswith("20.0000  207 golden retriever (83%)") and lines[2].endswith("22.0000  2 (given)")


# -- the command --------------------------------------------------------------------------------------------

def test_dse_invert_prints_each_images_class_and_accepts_a_class_name(G, E, inputs, tmp_path, capsys):
    folder, x = inputs
    G.save_pretrained(tmp_path / "g")
    E.save_pretrained(tmp_path / "e")
    args = [str(folder), "--generator", str(tmp_path / "g"), "--encoder", str(tmp_path / "e"), "--no-lpips",
            "--quiet", "--device", "cpu"]
    with torch.no_grad():
        probs = E(x)["c"]
    with host(families=[COND]):
        assert main(["invert", *args, "-o", str(tmp_path / "predicted")]) == 0
        err = capsys.readouterr().err
        for i in range(5):
            index = int(probs[i].argmax())
            [line] = [line for line in err.splitlines() if line.startswith(f"img{i} ")]
            assert line.endswith(f"  {index} {G.class_names[index]} ({float(probs[i, index]):.0%})"), line
        assert main(["invert", *args, "--class", "TWO", "-o", str(tmp_path / "given")]) == 0
        err = capsys.readouterr().err
        assert all(line.endswith("  2 two (given)") for line in err.splitlines() if line.startswith("img"))
        assert main(["invert", *args, "--class", "tw0", "-o", str(tmp_path / "typo")]) == 2
        err = capsys.readouterr().err
        assert "unknown toy-biggan class 'tw0'; did you mean 'two'?" in err and "Traceback" not in err
