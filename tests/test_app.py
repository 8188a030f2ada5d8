"""dse app without a browser: what each control of the page does (dse_core.app.backend) and the page's wiring."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dse_core.app.backend import (Studio, class_markdown, failed_markdown, metrics_markdown, model_choices)
from dse_core.cli import main
from dse_core.errors import DseError
from dse_core.latents import read_latents

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return Studio(model_choices(), workdir=tmp_path_factory.mktemp("app"))


@pytest.fixture(scope="module")
def run(studio):
    return studio.invert("stylegan2 demo", [EXAMPLES / "digit-2.png", EXAMPLES / "digit-3.png"])


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def test_model_choices_list_every_demo_and_put_the_given_model_first():
    labels = [c.label for c in model_choices()]
    assert {"stylegan2 demo", "pggan demo", "stylegan demo", "biggan demo"} <= set(labels)
    assert model_choices("pggan")[0].label == "pggan demo"
    given = model_choices("stylegan2", "demo:stylegan2", "demo:stylegan2")
    assert given[0].cli_args() == ["--gan", "stylegan2", "--generator", "demo:stylegan2", "--encoder", "demo:stylegan2"]


def test_registry_pairs_in_the_cache_are_offered(monkeypatch):
    from dse_core.models import registry
    from dse_core.plugins import get_host

    known = get_host().checkpoints
    encoder = registry.parse_entry({
        "id": "e-cat-256", "kind": "encoder", "family": "stylegan2", "plugin": "dse-plugin-stylegan2", "format": "dse",
        "resolution": 256, "dataset": "LSUN Cat", "license": "Apache-2.0", "source_url": "https://example.org",
        "inverts": "stylegan2-cat-256", "hub": {"repo_id": "someone/e-cat-256", "file": "model.safetensors",
                                                 "unverified": True, "unverified_reason": "a test entry"}}, "test")
    monkeypatch.setitem(known, encoder.id, encoder)
    assert "e-cat-256 (registry)" not in {c.label for c in model_choices()}  # not in the cache: not offered
    monkeypatch.setattr(registry, "cached_path", lambda entry, filename=None: Path("/cached") / entry.id)
    offered = {c.label: c for c in model_choices()}
    assert offered["e-cat-256 (registry)"].cli_args() == ["--gan", "stylegan2", "--generator", "stylegan2-cat-256",
                                                          "--encoder", "e-cat-256"]
    assert sum(label.endswith("(registry)") for label in offered) == 1  # generators alone are not pairs


def test_invert_writes_what_dse_invert_writes_and_its_command_reproduces_it(run, tmp_path):
    assert run.names == ["digit-2", "digit-3"] and not run.failed
    assert 15 < run.images[0]["psnr"] < 40 and 0 < run.images[0]["ssim"] <= 1
    for name in run.names:  # ws is the one latent: a bare .npy too
        assert [p.suffix for p in run.latent_files(name)] == [".safetensors", ".npz", ".npy"]
        assert run.reconstruction(name).is_file()
    assert np.array_equal(np.load(run.latents("digit-2", ".npy")), read_latents(run.latents("digit-2")).tensors["ws"])
    # the page's command, run from a terminal into another folder, gives the same latents
    argv = shlex.split(run.command)[1:]
    argv[argv.index("-o") + 1] = str(tmp_path / "cli")
    assert main([*argv, "--quiet"]) == 0
    for name in run.names:
        ours, theirs = read_latents(run.latents(name)), read_latents(tmp_path / "cli" / "latents" / f"{name}.safetensors")
        torch.testing.assert_close(ours.tensors["ws"], theirs.tensors["ws"], rtol=0, atol=0)


def test_metrics_table_is_what_metrics_json_holds(run):
    table = metrics_markdown(run)
    assert table.splitlines()[0] == "| image | PSNR | SSIM | MSE | cosine |"
    assert f"| digit-2 | {run.images[0]['psnr']:.4g} |" in table
    assert class_markdown(run) == "" and failed_markdown(run) == ""


def test_a_bad_upload_is_a_message_and_the_good_ones_are_inverted(studio, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    result = studio.invert("stylegan2 demo", [broken, notes, EXAMPLES / "digit-5.png"])
    assert result.names == ["digit-5"]
    message = failed_markdown(result)
    assert "broken.png" in message and "notes.txt" in message and "not an image file dse reads" in message


def test_too_many_or_no_images_are_refused(studio, tmp_path):
    with pytest.raises(DseError, match="no image to invert"):
        studio.invert("stylegan2 demo", [])
    with pytest.raises(DseError, match="at most 16"):
        studio.invert("stylegan2 demo", [EXAMPLES / "digit-2.png"] * 17)
    with pytest.raises(DseError, match="unknown model"):
        studio.invert("no such model", [EXAMPLES / "digit-2.png"])


def test_render_without_moves_is_the_reconstruction_and_moves_change_it(studio, run):
    direction, _, command = studio.directions("stylegan2 demo", "sefa")
    assert command.startswith("dse directions --gan stylegan2 --method sefa")
    still, _ = studio.render_edit(run, "digit-2", direction, [(0, 0.0)])
    assert np.abs(still.astype(int) - _png(run.reconstruction("digit-2"))).max() <= 1
    moved, latents = studio.render_edit(run, "digit-2", direction, [(0, 3.0), (2, -2.0)], layers="0-3")
    assert np.abs(moved.astype(int) - still.astype(int)).mean() > 5
    base = read_latents(run.latents("digit-2")).tensors["ws"]
    assert torch.equal(latents["ws"][0, 4:], base[0, 4:])  # layers 4.. untouched
    assert not torch.equal(latents["ws"][0, :4], base[0, :4])


def test_saved_edit_is_reproduced_by_its_commands_and_by_dse_generate(studio, run, tmp_path):
    direction, folder, _ = studio.directions("stylegan2 demo", "sefa")
    moves = [(0, 2.0), (1, -1.5)]
    shown, _ = studio.render_edit(run, "digit-3", direction, moves)
    files, commands = studio.save_edit(run, "digit-3", direction, folder, moves)
    latents_file, npz, image = files
    assert latents_file.suffix == ".safetensors" and npz.is_file()
    assert np.abs(_png(image) - shown.astype(int)).max() <= 1
    assert main(["generate", str(latents_file), "-o", str(tmp_path / "gen")]) == 0
    generated = next((tmp_path / "gen").rglob("*.png"))
    assert np.abs(_png(generated) - shown.astype(int)).max() <= 1
    lines = commands.splitlines()
    assert len(lines) == 2 and all(line.startswith("dse edit ") for line in lines)
    with pytest.raises(DseError, match="every strength is 0"):
        studio.save_edit(run, "digit-3", direction, folder, [(0, 0.0)])


def test_interpolation_ends_are_the_two_reconstructions(studio, run):
    a = studio.interpolate(run, "digit-2", "digit-3", 0.0)
    b = studio.interpolate(run, "digit-2", "digit-3", 1.0)
    middle = studio.interpolate(run, "digit-2", "digit-3", 0.5)
    assert np.abs(a.astype(int) - _png(run.reconstruction("digit-2"))).max() <= 1
    assert np.abs(b.astype(int) - _png(run.reconstruction("digit-3"))).max() <= 1
    assert np.abs(middle.astype(int) - a.astype(int)).mean() > 1


def test_conditional_model_reports_top5_and_takes_a_class(studio):
    info = studio.info("biggan demo")
    assert len(info.class_names) == 10 and studio.direction_methods("biggan demo") == ("pca",)
    predicted = studio.invert("biggan demo", [EXAMPLES / "digit-3.png"])
    entry = predicted.images[0]["class"]
    assert not entry["given"] and len(entry["top5"]) == 5
    assert "**digit-3**:" in class_markdown(predicted) and metrics_markdown(predicted).splitlines()[0].endswith("class |")
    given = studio.invert("biggan demo", [EXAMPLES / "digit-3.png"], class_="7", refine="latents", steps=2)
    assert given.images[0]["class"]["index"] == 7 and given.images[0]["class"]["given"]
    assert "--class 7" in given.command and "--refine latents --refine-steps 2" in given.command
    assert "decoded as the given class 7" in class_markdown(given)


def test_generator_tuning_edits_decode_with_the_tuned_copy(studio):
    tuned = studio.invert("pggan demo", [EXAMPLES / "digit-8.png"], refine="generator", steps=2)
    direction, _, _ = studio.directions("pggan demo", "sefa")
    still, _ = studio.render_edit(tuned, "digit-8", direction, [])
    assert np.abs(still.astype(int) - _png(tuned.reconstruction("digit-8"))).max() <= 1


def test_uploads_gather_files_paste_and_drawing():
    from dse_core.app.page import uploads

    assert uploads(None, None, None) == []
    assert uploads(["a.png", "b.png"], "c.png", {"background": None, "layers": [], "composite": "d.png"}) == \
        ["a.png", "b.png", "c.png", "d.png"]
    assert uploads([], None, {"composite": None}) == []


def test_the_page_builds_with_every_control(studio):
    pytest.importorskip("gradio", reason="the page needs the app extra: pip install 'dse-gan[app]'")
    from dse_core.app.page import build

    page = build(studio)
    ids = {block.elem_id for block in page.blocks.values() if getattr(block, "elem_id", None)}
    assert {"model", "upload", "invert", "metrics", "downloads", "command", "strength-0", "edited",
            "save-edit", "between"} <= ids


def test_uploads_over_the_size_limit_are_refused(studio):
    pytest.importorskip("gradio", reason="the page needs the app extra")
    import socket
    import urllib.error
    import urllib.request

    from dse_core.app.page import launch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    page = launch(studio, port=port, max_upload_mb=1, block=False)
    try:
        def upload(size: int) -> int:
            body = (b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"x.png\"\r\n"
                    b"Content-Type: image/png\r\n\r\n" + b"x" * size + b"\r\n--b--\r\n")
            request = urllib.request.Request(f"{page.local_url}gradio_api/upload", data=body,
                                             headers={"Content-Type": "multipart/form-data; boundary=b"})
            try:
                return urllib.request.urlopen(request, timeout=30).status
            except urllib.error.HTTPError as exc:
                return exc.code
        assert page.local_url.startswith("http://127.0.0.1:")  # this machine only, by default
        assert upload(1000) == 200
        assert upload(1_100_000) == 413
    finally:
        page.close()


def test_without_gradio_dse_app_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert main(["app"]) == 2
    assert 'pip install "dse-gan[app]"' in capsys.readouterr().err


def test_help_lists_app_and_a_public_host_warns(monkeypatch, capsys):
    from dse_core.cli import build_parser

    assert "app" in build_parser().format_help()
    pytest.importorskip("gradio", reason="the page needs the app extra")
    import dse_core.app.page as page

    launched = {}
    monkeypatch.setattr(page, "launch", lambda studio, **kw: launched.update(kw))
    assert main(["app", "--gan", "stylegan2", "--host", "0.0.0.0", "--port", "9", "--no-lpips"]) == 0
    assert "no authentication" in capsys.readouterr().err
    assert launched["host"] == "0.0.0.0" and launched["port"] == 9
