"""Edits: w + alpha d along a direction (per layer or broadcast), interpolation, and `dse edit`'s files."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dse_core import Direction, edit, interpolate, load_generator
from dse_core.cli import main
from dse_core.editing import parse_layers, parse_strengths, slerp
from dse_core.errors import DseError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_a_broadcast_direction_moves_the_chosen_layers_by_alpha_std():
    d = Direction(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), "ws", std=torch.tensor([2.0, 3.0]))
    ws = torch.randn(2, 4, 3)
    out = edit({"ws": ws}, d, [-1.0, 0.5], component=1, layers=[0, 2])
    moved = out[1]["ws"] - ws
    assert torch.allclose(moved[:, [0, 2], 1], torch.full((2, 2), 1.5)) and moved[:, [1, 3]].abs().max() == 0
    assert moved[:, :, [0, 2]].abs().max() == 0
    assert torch.allclose(out[0]["ws"] - ws, -2 * (out[1]["ws"] - ws))


def test_a_per_layer_direction_applies_as_is_and_its_own_layers_are_the_default():
    vec = torch.randn(1, 4, 3)
    d = Direction(vec, "ws", layers=(1,))
    ws = torch.zeros(1, 4, 3)
    [out] = edit({"ws": ws}, d, [2.0])
    assert torch.allclose(out["ws"][0, 1], 2 * vec[0, 1]) and out["ws"][0, [0, 2, 3]].abs().max() == 0
    [every] = edit({"ws": ws}, d, [1.0], layers=range(4))
    assert torch.allclose(every["ws"][0], vec[0])


def test_renormalize_keeps_the_norm_of_z():
    z = torch.randn(3, 16) * 0.3  # an inverted z of a z-normalizing generator: any norm
    d = Direction(torch.randn(1, 16), "z")
    [same, out] = edit({"z": z}, d, [0.0, 5.0], renormalize=True)
    assert torch.allclose(out["z"].norm(dim=1), torch.full((3,), 4.0), rtol=1e-5)  # sqrt(z_dim)
    assert torch.allclose(same["z"], z * (4 / z.norm(dim=1, keepdim=True)), atol=1e-6)
    assert (out["z"] - same["z"]).abs().max() > 0.1
    with pytest.raises(DseError, match="--layers applies to per-layer ws"):
        edit({"z": z}, d, [1.0], layers=[0])


def test_interpolation_ends_at_both_latents_and_slerps_z():
    a = {"z": torch.randn(2, 8), "c": torch.eye(8)[:2]}
    b = {"z": torch.randn(2, 8), "c": torch.eye(8)[2:4]}
    path = interpolate(a, b, 5)
    assert torch.allclose(path[0]["z"], a["z"], atol=1e-5) and torch.allclose(path[-1]["z"], b["z"], atol=1e-5)
    assert torch.allclose(path[2]["c"], (a["c"] + b["c"]) / 2)
    mid = slerp(a["z"], b["z"], 0.5)
    assert torch.allclose(mid.norm(dim=1), (a["z"].norm(dim=1) + b["z"].norm(dim=1)) / 2, rtol=1e-4)
    assert not torch.allclose(mid, (a["z"] + b["z"]) / 2)  # not the straight line


def test_parsing_layers_and_strengths():
    assert parse_layers("0-2,5", 8) == (0, 1, 2, 5) and parse_layers("6-", 8) == (6, 7)
    assert parse_strengths("-3:3", 7) == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
    assert parse_strengths("-2,0,2") == [-2.0, 0.0, 2.0] and parse_strengths("1.5") == [1.5]
    with pytest.raises(DseError, match="ws 0..7"):
        parse_layers("3-9", 8)
    with pytest.raises(DseError, match="runs backwards"):
        parse_layers("5-2", 8)
    with pytest.raises(DseError, match="finite"):
        parse_strengths("nan")
    with pytest.raises(DseError, match="--strength"):
        parse_strengths("big")


def test_directions_save_and_load(tmp_path):
    d = Direction(torch.randn(3, 5), "ws", std=torch.tensor([1.0, 2.0, 3.0]), layers=(0, 1), names=("a", "b", "c"),
                  source={"format": "test"})
    path = d.save(tmp_path / "dirs" / "direction")
    back = Direction.load(path)
    assert torch.equal(back.vectors, d.vectors) and torch.equal(back.std, d.std)
    assert (back.latent, back.layers, back.names, back.source) == ("ws", (0, 1), ("a", "b", "c"), {"format": "test"})
    assert json.loads(path.with_suffix(".json").read_text())["shape"] == [3, 5]
    assert back.component(2).names == ("c",) and float(back.component(-1).std[0]) == 3.0


@pytest.fixture(scope="module")
def inverted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("inverted")
    assert main(["invert", "--gan", "stylegan2", str(EXAMPLES), "-o", str(out), "--device", "cpu", "--quiet",
                 "--no-lpips"]) == 0
    return out


def test_dse_edit_writes_steps_latents_grid_and_record(inverted, tmp_path):
    G = load_generator("demo:stylegan2")
    torch.manual_seed(0)
    d = Direction(torch.nn.functional.normalize(torch.randn(2, G.w_dim), dim=1), "ws", std=torch.tensor([1.0, 4.0]),
                  source={"format": "test"})
    dirs = d.save(tmp_path / "dirs" / "direction")
    out = tmp_path / "edits"
    assert main(["edit", str(inverted / "latents"), "--direction", str(dirs), "--component", "1", "--strength",
                 "-2:2", "--steps", "5", "--layers", "0-3", "-o", str(out), "--device", "cpu"]) == 0
    record = json.loads((out / "edit.json").read_text())
    assert record["steps"] == ["00_-2", "01_-1", "02_+0", "03_+1", "04_+2"] and record["layers"] == [0, 1, 2, 3]
    assert record["strength_unit"] == "std" and record["std"] == 4.0 and len(record["inputs"]) == 4
    stems = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert stems == ["digit-2", "digit-3", "digit-5", "digit-8"]
    folder = out / "digit-3"
    # the step at 0 is the inversion itself; +1 moved layers 0-3 by 4 * d
    from safetensors.torch import load_file

    original = load_file(inverted / "latents" / "digit-3.safetensors")["ws"]
    zero, plus = (load_file(folder / f"{s}.safetensors")["ws"] for s in ("02_+0", "03_+1"))
    assert torch.allclose(zero, original)
    assert torch.allclose((plus - original)[0, :4], 4 * d.vectors[1].expand(4, -1), atol=1e-5)
    assert (plus - original)[0, 4:].abs().max() == 0
    # dse generate reproduces the step images from their latents
    assert main(["generate", str(folder), "-o", str(tmp_path / "regen"), "--device", "cpu"]) == 0
    for step in ("00_-2", "04_+2"):
        a = np.asarray(Image.open(folder / f"{step}.png"), dtype=np.int16)
        b = np.asarray(Image.open(tmp_path / "regen" / f"{step}.png"), dtype=np.int16)
        assert np.abs(a - b).max() == 0
    # the images change with |alpha|
    pictures = [np.asarray(Image.open(folder / f"{s}.png"), dtype=np.float32) for s in record["steps"]]
    assert np.abs(pictures[4] - pictures[2]).mean() > np.abs(pictures[3] - pictures[2]).mean() > 0
    grid = np.asarray(Image.open(out / "grid.png").convert("L"), dtype=np.int16)
    assert grid.shape[1] > 5 * 32 and grid.shape[0] > 4 * 32
    band = grid[2 + 32 : 2 + 32 + 8]  # the step captions under the first row: each column its own
    cells = [band[:, 2 + i * 34 : 2 + i * 34 + 32] for i in range(5)]
    assert all(cell.max() > 128 for cell in cells) and np.abs(cells[0] - cells[4]).max() > 0


def test_dse_edit_interpolates_between_two_inversions(inverted, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "morph"
    a, b = inverted / "latents" / "digit-2.safetensors", inverted / "latents" / "digit-8.safetensors"
    assert main(["edit", str(a), "--interpolate", str(b), "--steps", "3", "-o", str(out), "--device", "cpu"]) == 0
    steps = [load_file(out / "digit-2" / f"{t}.safetensors")["ws"] for t in ("00_t0", "01_t0.5", "02_t1")]
    wa, wb = load_file(a)["ws"], load_file(b)["ws"]
    assert torch.allclose(steps[0], wa) and torch.allclose(steps[2], wb, atol=1e-6)
    assert torch.allclose(steps[1], (wa + wb) / 2, atol=1e-6)  # linear in w


def test_a_direction_that_does_not_fit_is_refused(inverted, tmp_path, capsys):
    z_dir = Direction(torch.randn(1, 64), "z").save(tmp_path / "z")
    assert main(["edit", str(inverted / "latents"), "--direction", str(z_dir), "-o", str(tmp_path / "e")]) != 0
    err = capsys.readouterr().err
    assert "lives in z" in err and "inverted latents are ws" in err
    wide = Direction(torch.randn(1, 512), "ws").save(tmp_path / "wide")
    assert main(["edit", str(inverted / "latents"), "--direction", str(wide), "-o", str(tmp_path / "e")]) != 0
    assert "takes ws as (8, 64)" in capsys.readouterr().err


def test_a_direction_made_for_other_weights_warns(inverted, tmp_path):
    import warnings

    from dse_core.editing import edit_files
    from dse_core.errors import DseWarning

    d = Direction(torch.randn(1, 64), "ws", generator={"family": "stylegan2", "fingerprint": "0" * 64})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        edit_files(inverted / "latents" / "digit-2.safetensors", tmp_path / "e", direction=d, strength="1")
    assert any(issubclass(w.category, DseWarning) and "made for another generator" in str(w.message) for w in caught)


def test_options_an_edit_cannot_honour_are_refused(inverted, tmp_path, capsys):
    d = Direction(torch.randn(2, 64), "ws").save(tmp_path / "d")
    latents = str(inverted / "latents")
    cases = [(["--direction", str(d), "--component", "2"], "components 0..1"),
             (["--direction", str(d), "--strength", "2", "--steps", "5"], "--steps divides a range"),
             (["--direction", str(d), "--renormalize"], "--renormalize applies to z-space edits"),
             (["--interpolate", latents + "/digit-2.safetensors", "--strength", "2"], "--interpolate takes --steps only"),
             (["--direction", str(d), "--strength", "-1:1", "--steps", "1"], "--steps 1: at least 2")]
    for args, message in cases:
        assert main(["edit", latents, *args, "-o", str(tmp_path / "e"), "--device", "cpu"]) != 0, args
        assert message in capsys.readouterr().err, args
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "old.png").write_bytes(b"")
    assert main(["edit", latents, "--direction", str(d), "-o", str(tmp_path / "used"), "--device", "cpu"]) != 0
    assert "is not empty" in capsys.readouterr().err


def test_close_strengths_get_distinct_ordered_files(inverted, tmp_path):
    d = Direction(torch.randn(1, 64), "ws").save(tmp_path / "d")
    out = tmp_path / "fine"
    assert main(["edit", str(inverted / "latents" / "digit-2.safetensors"), "--direction", str(d), "--strength",
                 "0:0.01", "--steps", "5", "-o", str(out), "--device", "cpu"]) == 0
    names = sorted(p.stem for p in (out / "digit-2").glob("*.png"))
    assert names == ["00_+0", "01_+0.0025", "02_+0.005", "03_+0.0075", "04_+0.01"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> Path:
    """digit-2 inverted with its own tuned copy of the demo G (PTI, 1 step)."""
    out = tmp_path_factory.mktemp("tuned")
    assert main(["invert", "--gan", "stylegan2", str(EXAMPLES / "digit-2.png"), "-o", str(out), "--device", "cpu",
                 "--quiet", "--no-lpips", "--refine", "generator", "--refine-steps", "1"]) == 0
    return out


def test_a_direction_of_the_base_g_edits_its_tuned_copies_without_a_warning(tuned, tmp_path):
    import warnings

    from dse_core.editing import edit_files
    from dse_core.models.format import generator_fingerprint

    base = generator_fingerprint(load_generator("demo:stylegan2"))
    d = Direction(torch.randn(1, 64), "ws", generator={"family": "stylegan2", "fingerprint": base})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        edit_files(tuned / "latents" / "digit-2.safetensors", tmp_path / "e", direction=d, strength="1")
    assert not [w for w in caught if "made for another generator" in str(w.message)]


def test_edit_checks_another_generator_as_generate_does(inverted, tuned, tmp_path, capsys):
    d = Direction(torch.randn(1, 64), "ws").save(tmp_path / "d")
    other = str(tuned / "generators" / "digit-2")  # same shapes, other weights
    args = ["edit", str(inverted / "latents" / "digit-3.safetensors"), "--direction", str(d), "--strength", "1",
            "--generator", other, "--device", "cpu"]
    assert main([*args, "-o", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "these latents were inverted with generator 'demo:stylegan2'" in err and "--force" in err
    assert not (tmp_path / "e").exists()
    assert main([*args, "--force", "-o", str(tmp_path / "e")]) == 0
    assert "decoding anyway (--force)" in capsys.readouterr().err
