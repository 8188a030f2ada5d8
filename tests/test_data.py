"""Reading users' images: every common mode becomes an RGB tensor in [-1, 1] at the generator's size."""

import numpy as np
import pytest
import torch
from PIL import Image

from dse_core.data import find_images, load_image


@pytest.mark.parametrize("name", ["a.png", "a.bmp", "a.tif"])  # lossless formats: exact
def test_rgb_images_round_trip_exactly(tmp_path, name):
    pixels = (np.arange(16 * 16 * 3) % 256).astype(np.uint8).reshape(16, 16, 3)
    Image.fromarray(pixels).save(tmp_path / name)
    item = load_image(tmp_path / name, 16)
    assert item.notes == ()
    expected = torch.from_numpy(pixels).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.allclose(item.tensor, expected, atol=1e-6)


def test_modes_are_converted_and_said(tmp_path):
    Image.fromarray(np.full((8, 8), 200, np.uint8), "L").save(tmp_path / "grey.png")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:4, ..., 3] = 255  # top half opaque red, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(tmp_path / "deep.png")

    grey = load_image(tmp_path / "grey.png", 8)
    assert torch.allclose(grey.tensor, torch.full((3, 8, 8), 200 / 127.5 - 1))
    red = load_image(tmp_path / "rgba.png", 8)
    assert red.notes == ("transparency composited on white",)
    assert torch.allclose(red.tensor[:, 0, 0], torch.tensor([1.0, -1.0, -1.0]))
    assert torch.allclose(red.tensor[:, 7, 0], torch.tensor([1.0, 1.0, 1.0]))  # transparent -> white
    deep = load_image(tmp_path / "deep.png", 8)
    assert "16-bit converted to 8-bit range" in deep.notes and torch.allclose(deep.tensor, torch.ones(3, 8, 8))
    assert load_image(tmp_path / "grey.png", 8, channels=1).tensor.shape == (1, 8, 8)


def test_aspect_change_is_a_centre_crop_and_reported(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, 10:30] = 255  # the centre square is white, the sides black
    Image.fromarray(pixels).save(tmp_path / "wide.jpg", quality=100)
    item = load_image(tmp_path / "wide.jpg", 10)
    assert item.notes == ("cropped 40x20 to its centre square", "resized 20px to 10px")
    assert item.tensor.shape == (3, 10, 10) and item.tensor.min() > 0.9


@pytest.mark.parametrize("content, reason", [(b"", "empty file"), (b"\x89PNG\r\n\x1a\n broken", "not a readable image")])
def test_bad_files_raise_with_the_reason(tmp_path, content, reason):
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(ValueError, match=reason):
        load_image(tmp_path / "bad.png", 8)


def test_truncated_png_is_caught(tmp_path):
    Image.fromarray(np.random.randint(0, 255, (64, 64, 3), np.uint8)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable image"):
        load_image(tmp_path / "cut.png", 8)


def test_find_images_walks_folders_sorted_and_reports_missing(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.png", "a.JPG", "sub/c.webp", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    found, missing = find_images([tmp_path, tmp_path / "nope.png"])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.JPG", "b.png", "sub/c.webp"]
    assert [m.path.name for m in missing] == ["nope.png"]


def test_find_images_says_which_files_it_skips(tmp_path):
    from dse_core.data import describe_unsupported, scan_inputs

    for name in ("a.png", "d.tif", "f.jfif", "notes.txt", "b.gif", "c.GIF", "e.psd", "paper.pdf", "g.h5", ".DS_Store", ".x.gif"):
        (tmp_path / name).write_bytes(b"x")
    scan = scan_inputs([tmp_path])
    assert [p.name for p in scan.found] == ["a.png", "d.tif", "f.jfif"]
    assert scan.unsupported == {".gif": 2, ".psd": 1}  # images in other formats; not notes, not hidden files
    assert describe_unsupported(scan.unsupported) == "3 images (.gif, .psd)"


def test_decompression_bomb_is_a_bad_image(tmp_path, monkeypatch):
    # the same guard as a 14000x14000 picture trips at PIL's default limit, without writing one
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    Image.new("1", (64, 64)).save(tmp_path / "big.png")
    with pytest.raises(ValueError, match="too large to decode safely"):
        load_image(tmp_path / "big.png", 8)


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((8, 8, 3), np.uint8)
    pixels[0] = 255  # the stored top row is white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view": the top row becomes the right column
    Image.fromarray(pixels).save(tmp_path / "phone.png", exif=exif)
    item = load_image(tmp_path / "phone.png", 8)
    assert item.notes == ("rotated as its EXIF orientation says",)
    assert torch.all(item.tensor[:, :, 7] == 1) and torch.all(item.tensor[:, :, :7] == -1)


def test_a_file_given_twice_or_also_inside_a_folder_is_one_input(tmp_path):
    from dse_core.data import scan_inputs

    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"x")
    scan = scan_inputs([tmp_path / "b.png", tmp_path, tmp_path / "b.png", str(tmp_path / "." / "a.png")])
    assert [p.name for p in scan.found] == ["b.png", "a.png"]  # first mention kept, order kept
