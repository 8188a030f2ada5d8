"""--align: the FFHQ face crop (dse_core.align): its geometry, the warp, the detector and dse invert / dse eval."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dse_core import Encoder, Inverter
from dse_core.align import (MISSING, FaceDetector, FaceLandmarks, NoFaceError, _dlib_models, align_face,
                            aligned_points, ffhq_quad, warp_quad)
from dse_core.cli import main
from dse_core.data import load_image
from dse_core.errors import DseError
from dse_core.invert import invert_files
from dse_plugin_stylegan2.encoder import encoder_plan

ASTRONAUT = Path(__file__).parent / "fixtures" / "faces" / "astronaut.png"

# an upright face: eyes 100 px apart, the mouth's corners 60 px apart, 90 px below them. The crop's half side is
# max(2 x 100, 1.8 x 90) = 200 around (50, 9), so in a 64 px crop a point (dx, dy) from there lands at
# 32 + 32 * (dx, dy) / 200 - 0.5 (pixel centres at whole numbers)
FACE = np.array([[0, 0], [100, 0], [20, 90], [80, 90]], dtype=np.float64)
FFHQ_64 = np.array([[23.5, 30.06], [39.5, 30.06], [26.7, 44.46], [36.3, 44.46]])


def _moved(points, degrees, scale, shift):
    """``points`` turned (clockwise on screen), scaled and shifted: a photo of the same face, tilted."""
    a = np.deg2rad(degrees)
    turn = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return points @ turn.T * scale + np.asarray(shift, dtype=np.float64)


def test_the_quad_is_ffhqs_square_and_turns_with_the_face():
    assert np.allclose(ffhq_quad(*FACE), [[-150, -191], [-150, 209], [250, 209], [250, -191]])
    assert np.allclose(aligned_points(FACE, ffhq_quad(*FACE), 64), FFHQ_64)
    tilted = _moved(FACE, 25, 0.6, (190, 170))
    quad = ffhq_quad(*tilted)
    assert np.allclose(quad, _moved(ffhq_quad(*FACE), 25, 0.6, (190, 170)))  # the square turns with the face
    assert np.allclose(aligned_points(tilted, quad, 64), FFHQ_64)  # and the crop undoes it
    long_face = FACE * [1, 2.5]  # eye-to-mouth (225) now sets the size: half side 1.8 x 225 = 405
    assert np.allclose(np.linalg.norm(ffhq_quad(*long_face)[3] - ffhq_quad(*long_face)[0]), 2 * 405)


def _dots(shape, points, colours, radius):
    """A black (3, H, W) image in [-1, 1] with antialiased discs: each one's intensity centroid is exactly its point."""
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    image = np.zeros((3, *shape))
    for (x, y), colour in zip(points, colours):
        coverage = np.clip(radius + 0.5 - np.hypot(xs - x, ys - y), 0, 1)
        image += coverage * np.asarray(colour, dtype=np.float64)[:, None, None]
    return torch.from_numpy(image * 2 - 1).float()


def _centroid(weights: torch.Tensor) -> np.ndarray:
    ys, xs = torch.meshgrid(torch.arange(weights.shape[0]), torch.arange(weights.shape[1]), indexing="ij")
    return np.array([float((weights * xs).sum() / weights.sum()), float((weights * ys).sum() / weights.sum())])


def test_a_tilted_drawn_face_comes_out_level_with_its_points_at_ffhqs_places():
    tilted = _moved(FACE, 25, 0.6, (190, 170))  # eyes 60 px apart, turned 25 degrees
    red, green, blue = (1, 0, 0), (0, 1, 0), (0, 0, 1)
    photo = _dots((340, 380), tilted, [red, green, blue, blue], radius=6)
    landmarks = FaceLandmarks(*map(tuple, tilted))
    crop = align_face(photo, 64, landmarks)
    assert crop.shape == (3, 64, 64)
    weight = (crop + 1) / 2
    found = [_centroid(weight[0]), _centroid(weight[1]), _centroid(weight[2][:, :32]),
             _centroid(weight[2][:, 32:]) + [32, 0]]
    assert np.abs(np.array(found) - FFHQ_64).max() < 0.25  # each point where FFHQ puts it, to a quarter pixel
    assert abs(found[0][1] - found[1][1]) < 0.1  # the tilt is undone: the eyes level


def test_outside_the_photo_is_mirrored_not_black():
    ramp = torch.arange(32, dtype=torch.float32).expand(1, 32, 32).clone()  # each pixel's value: its column
    # a square whose left half lies left of the photo: output column k reads source column k - 16
    quad = np.array([[-16.5, -0.5], [-16.5, 31.5], [15.5, 31.5], [15.5, -0.5]])
    row = warp_quad(ramp, quad, 32)[0, 16]
    mirrored = torch.tensor([15 - k if k < 16 else k - 16 for k in range(32)], dtype=torch.float32)
    assert torch.allclose(row, mirrored, atol=0.13)  # exact but at the fold, where 2x2 subsamples straddle it
    assert torch.allclose(warp_quad(torch.full((3, 20, 30), 0.3), quad, 16), torch.full((3, 16, 16), 0.3))


def test_without_the_extra_align_says_what_to_install(monkeypatch, tmp_path, capsys):
    _dlib_models.cache_clear()
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib now raises ImportError
    try:
        with pytest.raises(DseError) as caught:
            FaceDetector()
        assert str(caught.value) == '--align needs the optional face-landmark package: pip install "dse-gan[align]"'
        Image.new("RGB", (8, 8)).save(tmp_path / "face.png")
        # before anything loads: the encoder named does not exist, and is not what it complains about
        assert main(["invert", str(tmp_path / "face.png"), "--align", "--encoder", str(tmp_path / "nope"),
                     "-o", str(tmp_path / "out"), "--device", "cpu"]) == 2
        assert capsys.readouterr().err.strip() == f"dse: error: {MISSING}"
    finally:
        _dlib_models.cache_clear()


class FakeDetector:
    """Landmarks at a fixed place in every photo; a dark photo has no face. Stands in for dlib."""

    def __call__(self, image):
        if image.mean() < -0.5:
            raise NoFaceError("no face found (--align needs a face seen from the front, eyes and mouth visible)")
        return FaceLandmarks(*map(tuple, FACE * 0.2 + [20, 20]), faces=2)


def _photos(folder: Path) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(60, 255, (70, 90, 3), dtype=np.uint8)).save(folder / "face.png")
    Image.fromarray(np.full((40, 40, 3), 10, np.uint8)).save(folder / "dark.png")


def test_invert_align_inverts_the_crops_and_names_a_photo_without_a_face(tiny_generator, tmp_path, monkeypatch,
                                                                         capsys):
    G = tiny_generator
    torch.manual_seed(3)
    E = Encoder(encoder_plan(G)).eval()
    _photos(tmp_path / "in")
    logs = []
    report = invert_files([tmp_path / "in"], Inverter(G, E), tmp_path / "out", align=FakeDetector(), progress=False,
                          log=logs.append)
    assert report.inverted == 1 and [f.path.name for f in report.failed] == ["dark.png"]
    assert f"skipped {tmp_path / 'in' / 'dark.png'}: no face found" in "\n".join(logs)
    photo = torch.from_numpy(np.asarray(Image.open(tmp_path / "in" / "face.png"), dtype=np.float32))
    expected = align_face(photo.permute(2, 0, 1) / 127.5 - 1, 16, FakeDetector()(photo.permute(2, 0, 1)))
    written = torch.from_numpy(np.asarray(Image.open(tmp_path / "out" / "aligned" / "face.png"), dtype=np.float32))
    assert (written.permute(2, 0, 1) / 127.5 - 1 - expected).abs().max() <= 1 / 127.5  # the crop, to 8 bits
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["metadata"]["aligned"] == "FFHQ face crop"
    assert metrics["images"][0]["notes"] == "aligned to the FFHQ face crop; the clearest of 2 faces found"
    grey = load_image(tmp_path / "in" / "face.png", 16, channels=1, align=FakeDetector()).tensor
    assert grey.shape == (1, 16, 16)
    assert torch.allclose(grey[0], (expected * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0), atol=1e-5)

    G.save_pretrained(tmp_path / "g")
    E.save_pretrained(tmp_path / "e")
    monkeypatch.setattr("dse_core.align.FaceDetector", FakeDetector)
    assert main(["invert", str(tmp_path / "in"), "--align", "-o", str(tmp_path / "cli"), "--generator",
                 str(tmp_path / "g"), "--encoder", str(tmp_path / "e"), "--no-lpips", "--device", "cpu",
                 "--quiet"]) == 1  # one photo failed
    captured = capsys.readouterr()
    assert "dark.png: no face found" in captured.err and "1 failed" in captured.out
    assert [p.name for p in (tmp_path / "cli" / "aligned").iterdir()] == ["face.png"]


def test_eval_align_reads_the_crops_and_needs_images(tiny_generator, tmp_path, capsys):
    from dse_core.evaluate import folder_set

    _photos(tmp_path / "in")
    images = folder_set(tiny_generator, tmp_path / "in", align=FakeDetector())
    assert images.x.shape == (1, 3, 16, 16) and images.source["aligned"] == "FFHQ face crop"
    assert [s["image"] for s in images.source["skipped"]] == [str(tmp_path / "in" / "dark.png")]
    assert main(["eval", "--gan", "stylegan2", "--align", "-o", str(tmp_path / "r")]) == 2
    assert "--align aligns the --images photos" in capsys.readouterr().err


def _has_dlib() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("dlib", "face_recognition_models"))


@pytest.mark.skipif(not _has_dlib(), reason='the real face detector needs the align extra: pip install -e ".[align]"')
def test_dlib_finds_the_astronauts_eyes_and_the_crop_centres_her_face():
    photo = torch.from_numpy(np.asarray(Image.open(ASTRONAUT).convert("RGB"), dtype=np.float32))
    photo = photo.permute(2, 0, 1) / 127.5 - 1
    landmarks = FaceDetector()(photo)
    # measured by hand on the 160 px fixture (enlarged 10x): eye centres near (66.5, 65) and (101.5, 66.5),
    # the mouth's corners near (66, 96) and (99.5, 97)
    (lx, ly), (rx, ry) = landmarks.eye_left, landmarks.eye_right
    assert 63 <= lx <= 70 and 62 <= ly <= 68 and 98 <= rx <= 105 and 63 <= ry <= 70
    assert 61 <= landmarks.mouth_left[0] <= 69 and 92 <= landmarks.mouth_left[1] <= 100
    assert 96 <= landmarks.mouth_right[0] <= 103 and 93 <= landmarks.mouth_right[1] <= 101
    crop = load_image(ASTRONAUT, 64, align=FaceDetector()).tensor
    assert torch.equal(crop, align_face(photo, 64, landmarks).clamp(-1, 1))
    # the hand-measured eyes land where FFHQ puts eyes (x 23.5 and 39.5 for a face this shape), level
    hand = aligned_points([[66.5, 65], [101.5, 66.5]], ffhq_quad(*landmarks.points()), 64)
    assert np.abs(hand[:, 0] - [23.5, 39.5]).max() < 1.5 and abs(hand[0, 1] - hand[1, 1]) < 1.5
    assert 27 <= hand[:, 1].min() and hand[:, 1].max() <= 33
    # and the pupils, the darkest pixels around there, are in the crop where the eyes should be
    luma = (crop + 1).mul(torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0)
    for x, y in FFHQ_64[:2].round().astype(int):
        window = luma[y - 4 : y + 5, x - 4 : x + 5]
        dy, dx = divmod(int(window.argmin()), 9)
        assert abs(dx - 4) <= 2 and abs(dy - 4) <= 2


@pytest.mark.skipif(not _has_dlib(), reason='the identity metric needs the align extra: pip install -e ".[align]"')
def test_identity_is_one_for_the_same_face_high_for_a_degraded_copy_and_lower_for_another():
    from dse_core.identity import FaceIdentity
    from dse_core.metrics import image_metrics, per_image, summarize

    photo = torch.from_numpy(np.asarray(Image.open(ASTRONAUT).convert("RGB"), dtype=np.float32))
    x = (photo.permute(2, 0, 1) / 127.5 - 1)[None]  # (1, 3, 160, 160)
    blurred = torch.nn.functional.interpolate(torch.nn.functional.interpolate(x, size=(40, 40), mode="area"),
                                              size=(160, 160), mode="bilinear", align_corners=False)
    noised = (x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    copies = {"itself": x, "blurred": blurred, "noised": noised, "upside down": x.flip(2), "grey": torch.zeros_like(x)}
    identity = FaceIdentity()
    scores = identity(x.expand(len(copies), -1, -1, -1), torch.cat(list(copies.values())))
    cos = dict(zip(copies, scores["identity"].tolist()))
    same = dict(zip(copies, scores["same_person"].tolist()))
    # measured: 1.0, 0.954 (4x blur), 0.961 (noise std 0.5 on [-1, 1]), 0.863, 0.852. dlib's descriptors are not
    # centred: even a grey square scores ~0.85, so the distance's same-person rule is what tells them apart
    assert cos["itself"] == pytest.approx(1.0, abs=1e-5) and same["itself"] == 1
    for name in ("blurred", "noised"):
        assert 0.93 < cos[name] < 0.99 and same[name] == 1, name
    for name in ("upside down", "grey"):
        assert cos[name] < 0.9 and same[name] == 0, name
    assert max(cos["upside down"], cos["grey"]) < min(cos["blurred"], cos["noised"]) - 0.05

    # at the demo generators' 32 px the face is still found (images enlarged to 160 px first); at 16 px it is not:
    # no identity (NaN), left out of the row and the summary
    small = torch.cat([load_image(ASTRONAUT, 32).tensor[None], torch.zeros(1, 3, 32, 32)])
    assert identity.faces_found(small) == 1 and identity.faces_found(small[1:]) == 0
    assert identity(small[:1], small[:1])["identity"].item() == pytest.approx(1.0, abs=1e-5)
    tiny = load_image(ASTRONAUT, 16).tensor[None]
    assert identity.faces_found(tiny) == 0
    scores = image_metrics(torch.cat([small[:1], small[:1]]), torch.cat([small[:1], small[:1].flip(2)]),
                           identity=identity)
    rows = [per_image(scores, i) for i in range(2)]
    assert rows[0]["identity"] == pytest.approx(1.0, abs=1e-5) and rows[1]["identity"] < 0.9
    grey_row = per_image(image_metrics(small[1:], small[1:], identity=identity), 0)
    assert "identity" not in grey_row and "same_person" not in grey_row and grey_row["psnr"] > 90
    summary = summarize(rows + [grey_row])
    assert summary["identity"]["n"] == 2 and summary["same_person"] == {"mean": 0.5, "std": 0.5, "n": 2}
    assert summary["psnr"]["n"] == 3
