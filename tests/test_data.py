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


def _smooth(width, height, channels=3):
    """A photo-like test picture: gentle gradients and waves, no detail finer than a few pixels."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    planes = [127 + 60 * np.sin(x / 23) + 60 * np.cos(y / 17), 127 + 100 * np.sin((x + y) / 41), 255 * x / width]
    return np.stack(planes[:channels], axis=-1).clip(0, 255).astype(np.uint8)


def _save(mode, path, width=300, height=200, **kw):
    """A ``width`` x ``height`` ``mode`` image at ``path`` (P: a palette, Pt: one with a transparent colour)."""
    rgb = _smooth(width, height)
    image = {"RGB": lambda: Image.fromarray(rgb),
             "L": lambda: Image.fromarray(rgb[..., 0]),
             "1": lambda: Image.fromarray(rgb[..., 0] > 127),
             "RGBA": lambda: Image.fromarray(np.dstack([rgb, rgb[..., 1]])),
             "LA": lambda: Image.fromarray(np.dstack([rgb[..., 0], rgb[..., 1]]), "LA"),
             "P": lambda: Image.fromarray(rgb).quantize(64),
             "Pt": lambda: Image.fromarray(rgb).quantize(64),
             "I;16": lambda: Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)}[mode]()
    if mode == "Pt":
        kw["transparency"] = 5
    image.save(path, **kw)
    return path


def _spy_on_reading(monkeypatch):
    """Record the size of every image area-averaged (Image.resize) and of every image turned into floats."""
    import dse_core.data as data

    seen = {"resized_from": [], "to_floats": []}
    real_resize, real_to_array = Image.Image.resize, data._to_array

    def resize(self, size, *args, **kwargs):
        seen["resized_from"].append(self.size)
        return real_resize(self, size, *args, **kwargs)

    def to_array(image, *args, **kwargs):
        seen["to_floats"].append(image.size)
        return real_to_array(image, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", resize)
    monkeypatch.setattr(data, "_to_array", to_array)
    return seen


@pytest.mark.parametrize("mode, name, channels", [
    ("RGB", "a.png", 3), ("RGB", "a.jpg", 3), ("L", "a.jpg", 1), ("RGBA", "a.png", 3), ("LA", "a.png", 1),
    ("P", "a.png", 3), ("Pt", "a.png", 3), ("1", "a.png", 3), ("I;16", "a.png", 3), ("L", "a.tif", 3),
])
def test_a_large_image_is_reduced_as_it_is_read_and_looks_the_same(tmp_path, monkeypatch, mode, name, channels):
    import dse_core.data as data

    kw = {"quality": 95} if name.endswith(".jpg") else {}
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: the reduced path must turn it upright too
    path = _save(mode, tmp_path / name, exif=exif, **kw)
    full = load_image(path, 8, channels)  # 300x200 is a small image: read in full
    seen = _spy_on_reading(monkeypatch)
    monkeypatch.setattr(data, "REDUCE_PIXELS", 0)  # as if it were a 12000 px photo
    reduced = load_image(path, 8, channels)
    assert reduced.notes == full.notes
    assert full.notes[-2:] == ("cropped 200x300 to its centre square", "resized 200px to 8px")  # upright, full size
    assert full.notes[0] == "rotated as its EXIF orientation says"
    assert seen["to_floats"] == [(32, 32)]  # only 4x the resolution ever became floats, not 200x300
    if name.endswith(".jpg"):
        assert seen["resized_from"] == [(75, 50)]  # JPEG: decoded at 1/4 size (DCT scaling), then averaged
    else:  # decoded in full, then averaged (RGBA, LA: PIL averages a premultiplied copy; TIFF: turned as decoded)
        assert seen["resized_from"] and set(seen["resized_from"]) <= {(300, 200), (200, 300)}
    difference = (reduced.tensor - full.tensor).abs().mean().item() / 2  # on [0, 1] pixels
    assert difference < 2 / 255, difference


def test_images_up_to_4096_px_squared_are_read_exactly_as_before(tmp_path, monkeypatch):
    import torch.nn.functional as F

    pixels = _smooth(1100, 700)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    seen = _spy_on_reading(monkeypatch)
    item = load_image(tmp_path / "a.png", 32)  # 20x the resolution, but under 4096x4096: no reduction
    assert seen == {"resized_from": [], "to_floats": [(1100, 700)]}
    square = torch.from_numpy(pixels[:, 200:900].astype(np.float32) / 255).permute(2, 0, 1)
    expected = F.interpolate(square[None], size=(32, 32), mode="bicubic", antialias=True)[0] * 2 - 1
    assert torch.equal(item.tensor, expected.clamp(-1, 1))


def test_a_very_large_image_is_a_note_not_a_warning(tmp_path, monkeypatch):
    import warnings

    import dse_core.data as data

    _save("RGB", tmp_path / "big.png", width=60, height=50)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # 3000 px: PIL warns above 2000, refuses above 4000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning escaping fails the test
        item = load_image(tmp_path / "big.png", 4)
        assert item.notes == ("a very large image (60x50, 0 Mpx): read in full", "cropped 60x50 to its centre square",
                              "resized 50px to 4px")
        monkeypatch.setattr(data, "REDUCE_PIXELS", 0)
        item = load_image(tmp_path / "big.png", 4)
        assert item.notes[0] == "a very large image (60x50, 0 Mpx): reduced to 16x16 as it was read"
    with warnings.catch_warnings(record=True) as caught:  # PIL's warning is gone, not just hidden from "error"
        warnings.simplefilter("always")
        load_image(tmp_path / "big.png", 4)
    assert caught == []
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # twice over: still refused
    with pytest.raises(ValueError, match="too large to decode safely"):
        load_image(tmp_path / "big.png", 4)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "I;16"])
def test_tiff_orientation_is_applied_like_any_other(tmp_path, mode):
    # uncompressed TIFFs opened by name are memory-mapped, and Pillow 13 then turns them upright wrongly
    exif = Image.Exif()
    exif[0x0112] = 6
    _save(mode, tmp_path / "a.tif", width=30, height=20, exif=exif)
    _save(mode, tmp_path / "a.png", width=30, height=20, exif=exif)
    tiff, png = load_image(tmp_path / "a.tif", 20), load_image(tmp_path / "a.png", 20)
    assert tiff.notes == png.notes and "rotated as its EXIF orientation says" in tiff.notes
    assert "cropped 20x30 to its centre square" in tiff.notes
    assert torch.equal(tiff.tensor, png.tensor)


@pytest.mark.parametrize("value", [0, 9])
def test_an_orientation_outside_1_to_8_turns_nothing_and_says_nothing(tmp_path, value):
    exif = Image.Exif()
    exif[0x0112] = value
    _save("RGB", tmp_path / "a.png", width=20, height=20, exif=exif)
    _save("RGB", tmp_path / "plain.png", width=20, height=20)
    item = load_image(tmp_path / "a.png", 20)
    assert item.notes == () and torch.equal(item.tensor, load_image(tmp_path / "plain.png", 20).tensor)


def test_transparency_is_composited_on_the_background_asked_for(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4] = 255  # top half opaque white, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgba[..., [0, 3]], "LA").save(tmp_path / "la.png")
    palette = Image.fromarray(np.where(np.arange(8)[:, None] < 4, 1, 0).repeat(8, 1).astype(np.uint8), "P")
    palette.putpalette([0, 0, 0, 255, 255, 255])
    palette.save(tmp_path / "p.png", transparency=0)
    for name in ("rgba.png", "la.png", "p.png"):
        black = load_image(tmp_path / name, 8, background=(0, 0, 0))
        assert black.notes == ("transparency composited on black",), name
        assert torch.all(black.tensor[:, :4] == 1) and torch.all(black.tensor[:, 4:] == -1), name
        assert load_image(tmp_path / name, 8).notes == ("transparency composited on white",)  # the default
        odd = load_image(tmp_path / name, 8, background=(0x12, 0x34, 0x56))
        assert odd.notes == ("transparency composited on #123456",)
        assert torch.allclose(odd.tensor[:, 7, 0], torch.tensor([0x12, 0x34, 0x56]) / 127.5 - 1)
    grey = load_image(tmp_path / "rgba.png", 8, channels=1, background=(128, 128, 128))
    assert grey.notes == ("transparency composited on grey",) and grey.tensor.shape == (1, 8, 8)
    assert torch.allclose(grey.tensor[0, 7], torch.full((8,), 128 / 127.5 - 1), atol=1e-3)


def test_parse_colour_names_and_hex_else_a_user_error():
    from dse_core.data import parse_colour
    from dse_core.errors import DseError

    assert parse_colour("white") == (255, 255, 255) and parse_colour(" Black ") == (0, 0, 0)
    assert parse_colour("grey") == parse_colour("gray") == (128, 128, 128)
    assert parse_colour("#123456") == (0x12, 0x34, 0x56) and parse_colour("#ABCDEF") == (0xAB, 0xCD, 0xEF)
    for bad in ("blue", "#12345", "#1234567", "123456", "#12345g", ""):
        with pytest.raises(DseError, match="expected white, black, grey or #rrggbb"):
            parse_colour(bad)
