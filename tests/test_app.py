"""dse app without a browser: what each control of the page does (dse_core.app.backend) and the page's wiring."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dse_core.app.backend import (ModelChoice, Studio, class_markdown, failed_markdown, folder_choices,
                                  metrics_markdown, model_choices, read_saved, weights_fingerprint)
from dse_core.cli import main
from dse_core.errors import DseError, DseWarning
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
    assert "broken.png**: not a readable image" in message  # its own reason, as dse invert logs it


def test_when_no_upload_inverts_each_file_says_why_as_dse_invert_does(studio, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(np.random.default_rng(0).bytes(2000))
    result = studio.invert("stylegan2 demo", [corrupt])
    assert result.names == [] and "cannot identify image file" in failed_markdown(result)
    assert "not an image file" not in failed_markdown(result)
    assert main(["invert", "--gan", "stylegan2", str(corrupt), "-o", str(tmp_path / "cli"), "--no-lpips"]) == 1
    logged = capsys.readouterr()
    reason = result.failed[0]["reason"].replace(result.failed[0]["image"], str(corrupt))  # the page's copy
    assert f"skipped {corrupt}: {reason}" in logged.err  # the very text the CLI gives


def test_align_without_a_face_says_so(studio):
    pytest.importorskip("dlib", reason="face alignment needs the align extra")
    result = studio.invert("stylegan2 demo", [EXAMPLES / "digit-3.png"], align=True)
    assert result.names == [] and "digit-3.png**: no face found (--align needs a face" in failed_markdown(result)


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
    a = studio.interpolate((run, "digit-2"), (run, "digit-3"), 0.0)
    b = studio.interpolate((run, "digit-2"), (run, "digit-3"), 1.0)
    middle = studio.interpolate((run, "digit-2"), (run, "digit-3"), 0.5)
    assert np.abs(a.astype(int) - _png(run.reconstruction("digit-2"))).max() <= 1
    assert np.abs(b.astype(int) - _png(run.reconstruction("digit-3"))).max() <= 1
    assert np.abs(middle.astype(int) - a.astype(int)).mean() > 1


def test_conditional_model_reports_top5_and_takes_a_class(studio):
    info = studio.info("biggan demo")
    assert len(info.class_names) == 10 and studio.direction_methods("biggan demo") == ("pca", "class")
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


def _editor_value(strokes: bool) -> dict:
    """What gradio's Sketchpad (type numpy) hands over: the page's black background, a transparent layer with the
    strokes (white, as the default brush draws), and their composite."""
    background = np.zeros((64, 64, 4), np.uint8)
    background[..., 3] = 255
    layer = np.zeros((64, 64, 4), np.uint8)
    if strokes:
        layer[20:44, 30:34] = (255, 255, 255, 255)
    composite = background.copy()
    composite[layer[..., 3] > 0] = layer[layer[..., 3] > 0]
    return {"background": background, "layers": [layer], "composite": composite}


def test_uploads_gather_files_paste_and_the_drawing_as_drawn(studio):
    from dse_core.app.page import uploads

    assert uploads(studio, None, None, None) == []
    assert uploads(studio, ["a.png", "b.png"], "c.png", _editor_value(strokes=False)) == ["a.png", "b.png", "c.png"]
    *given, drawn = uploads(studio, [], "c.png", _editor_value(strokes=True))
    assert given == ["c.png"] and Path(drawn).is_relative_to(studio.workdir)
    pixels = _png(drawn)
    assert (pixels[20:44, 30:34] == 255).all() and (pixels[:, :20] == 0).all()  # white strokes on black, as drawn
    result = studio.invert("stylegan2 demo", [drawn])
    assert result.images[0]["psnr"] > 12  # a stroke like the demo's digits: a real reconstruction


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


# --- a direction file uploaded on the page -----------------------------------------------------------------------

def _direction_file(tmp_path, gan: str = "stylegan2", method: str = "pca") -> Path:
    """A direction written by dse directions, as a user would upload it (the page hands over a cached copy)."""
    out = tmp_path / f"{gan}-{method}"
    assert main(["directions", "--gan", gan, "--method", method, "-n", "3", "-o", str(out), "--device", "cpu"]) == 0
    return out / "direction.safetensors"


def test_an_uploaded_direction_file_edits_as_dse_edit_does(studio, run, tmp_path):
    made = _direction_file(tmp_path)
    direction, copy, _ = studio.load_direction_file("stylegan2 demo", made)
    assert copy.is_relative_to(studio.workdir) and copy.read_bytes() == made.read_bytes()  # the commands name it
    shown, _ = studio.render_edit(run, "digit-2", direction, [(1, 2.0)])
    assert main(["edit", str(run.latents("digit-2")), "--direction", str(made), "--component", "1", "--strength", "2",
                 "-o", str(tmp_path / "cli")]) == 0
    assert np.abs(shown.astype(int) - _png(tmp_path / "cli" / "digit-2" / "00_+2.png")).max() <= 1
    assert np.abs(shown.astype(int) - _png(run.reconstruction("digit-2"))).mean() > 2  # it did move
    # a saved edit with the uploaded file is replayed by its command
    files, commands = studio.save_edit(run, "digit-2", direction, copy, [(1, 2.0)])
    assert f"--direction {copy}" in commands
    argv = shlex.split(commands)[1:]
    argv[argv.index("-o") + 1] = str(tmp_path / "replayed")
    assert main(argv) == 0
    assert np.abs(_png(tmp_path / "replayed" / "digit-2" / "00_+2.png") - _png(files[2])).max() <= 1


def test_a_bad_direction_file_is_a_one_line_message(studio, tmp_path):
    gr = pytest.importorskip("gradio", reason="the page needs the app extra")
    from dse_core.app.page import _on_page

    text = tmp_path / "smile.safetensors"
    text.write_text("these are not the vectors you are looking for\n")
    other = _direction_file(tmp_path, gan="pggan", method="sefa")  # z, 64: not the StyleGAN2 demo's ws
    for path, reason in ((text, "not a direction file dse reads"), (other, "lives in z")):
        with pytest.raises(DseError, match=reason) as caught:
            studio.load_direction_file("stylegan2 demo", path)
        assert "\n" not in caught.value.message
        with pytest.raises(gr.Error) as shown:  # on the page: a message, not a traceback
            _on_page(gr, studio.load_direction_file)("stylegan2 demo", path)
        assert reason in str(shown.value) and "Traceback" not in str(shown.value)


# --- converted folders and trained encoders: dse app --models DIR ------------------------------------------------

def _demo(kind: str, family: str = "stylegan2") -> Path:
    from dse_core.plugins import get_host

    return get_host().families[family].demo / kind


def _edit_config(folder: Path, change) -> None:
    header = json.loads((folder / "config.json").read_text())
    change(header)
    (folder / "config.json").write_text(json.dumps(header))


def _other_generator(folder: Path) -> Path:
    """A StyleGAN2 generator of the demo's shape with other weights, saved as dse convert saves one."""
    from dse_core.loading import load_generator

    G = load_generator("demo:stylegan2")
    with torch.no_grad():
        next(G.parameters()).add_(1.0)
    return G.save_pretrained(folder, source={"format": "test"}, card=False)


def test_models_folder_pairs_each_encoder_with_its_generator_by_fingerprint(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(_demo("generator"), models / "ffhq-like")
    _other_generator(models / "another")
    shutil.copytree(_demo("encoder"), models / "e1" / "encoder")  # a dse train run: its encoder/, one level down
    with pytest.warns(DseWarning, match="another: a stylegan2 generator with no encoder of it in --models"):
        choices = folder_choices([models])
    assert choices == [ModelChoice(f"stylegan2: {models / 'e1/encoder'} on {models / 'ffhq-like'}", "stylegan2",
                                   str(models / "ffhq-like"), str(models / "e1/encoder"))]
    # the pair loads as dse invert loads it (which checks the fingerprint again)
    G, E, spec = Studio(choices, workdir=tmp_path / "work").pair(choices[0].label)
    assert spec == str(models / "ffhq-like") and E.family == "stylegan2"


def test_a_folders_fingerprint_is_read_from_its_weights_file_alone(tmp_path):
    from dse_core.loading import load_generator
    from dse_core.models.format import generator_fingerprint

    for folder in (_demo("generator"), _other_generator(tmp_path / "other")):
        assert weights_fingerprint(folder) == generator_fingerprint(load_generator(folder))


def test_reading_a_models_folder_reads_configs_not_weights(tmp_path, monkeypatch):
    import dse_core.app.backend as backend

    models = tmp_path / "models"
    shutil.copytree(_demo("generator"), models / "g")
    (models / "g" / "model.safetensors").write_bytes(b"unreadable weights")  # never opened on this path
    shutil.copytree(_demo("encoder"), models / "e")
    _edit_config(models / "e", lambda h: h["source"]["generator"].update(id=str(models / "g")))  # as dse train records
    monkeypatch.setattr(backend, "weights_fingerprint", lambda folder: pytest.fail(f"read the weights of {folder}"))
    assert read_saved(models / "g").kind == "generator"
    choices = folder_choices([models])
    assert [(c.generator, c.encoder) for c in choices] == [(str(models / "g"), str(models / "e"))]


def test_an_encoder_without_a_fingerprint_is_paired_only_when_unambiguous(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(_demo("generator"), models / "g")
    shutil.copytree(_demo("encoder"), models / "e")
    _edit_config(models / "e", lambda h: h["source"]["generator"].pop("fingerprint"))
    assert [(c.gan, c.generator) for c in folder_choices([models])] == [("stylegan2", str(models / "g"))]
    _other_generator(models / "g2")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        alone = [c for c in folder_choices([models]) if c.encoder]
    assert any("records no fingerprint and 2 stylegan2 generators" in str(w.message) for w in caught)
    # listed alone, with the hint: dse invert --encoder loads the generator it records (here the demo)
    assert alone == [ModelChoice(f"stylegan2: {models / 'e'} (its recorded generator)", encoder=str(models / "e"))]
    G, _, spec = Studio(alone, workdir=tmp_path / "work").pair(alone[0].label)
    assert spec == "demo:stylegan2" and G.family == "stylegan2"


def test_bad_model_folders_are_skipped_with_a_warning(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(_demo("generator"), models / "g")
    shutil.copytree(_demo("encoder"), models / "e")
    for name in ("broken-json", "not-dse", "unknown-family", "no-config", "no-weights"):
        shutil.copytree(_demo("generator"), models / name)
    (models / "broken-json" / "config.json").write_text("{not json")
    _edit_config(models / "not-dse", lambda h: h.pop("library_name"))
    _edit_config(models / "unknown-family", lambda h: h.update(family="nosuchgan"))
    (models / "no-config" / "config.json").unlink()
    (models / "no-weights" / "model.safetensors").unlink()
    (models / "notes").mkdir()  # not a model folder at all: no word about it
    (models / "notes" / "config.json").write_text('{"hidden_size": 8}')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        choices = folder_choices([models])
    said = "\n".join(str(w.message) for w in caught)
    for name in ("broken-json", "not-dse", "unknown-family", "no-config", "no-weights"):
        assert f"{models / name}: skipped" in said
    assert "notes" not in said and "nosuchgan" in said
    assert [(c.generator, c.encoder) for c in choices] == [(str(models / "g"), str(models / "e"))]
    with pytest.raises(DseError, match="not a folder"):
        folder_choices([tmp_path / "nowhere"])


def test_dse_app_models_lists_the_folders_first(tmp_path, monkeypatch, capsys):
    pytest.importorskip("gradio", reason="the page needs the app extra")
    import dse_core.app.page as page

    shutil.copytree(_demo("generator"), tmp_path / "models" / "g")
    shutil.copytree(_demo("encoder"), tmp_path / "models" / "e")
    launched = {}
    monkeypatch.setattr(page, "launch", lambda studio, **kw: launched.update(studio=studio))
    assert main(["app", "--models", str(tmp_path / "models"), "--no-lpips", "--workdir", str(tmp_path / "w")]) == 0
    labels = list(launched["studio"].choices)
    assert labels[0] == f"stylegan2: {tmp_path / 'models/e'} on {tmp_path / 'models/g'}" and "stylegan2 demo" in labels
    assert main(["app", "--models", str(tmp_path / "nowhere"), "--no-lpips"]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_app_help_imports_neither_torch_nor_gradio():
    code = ("import sys\nfrom dse_core.cli import main\ntry:\n    main(['app', '--help'])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'gradio')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--models DIR" in done.stdout and done.stdout.strip().splitlines()[-1] == "[]"


# --- the page's wiring and what it shows around a model change ---------------------------------------------------

def _page(studio):
    pytest.importorskip("gradio", reason="the page needs the app extra")
    from dse_core.app.page import build

    return build(studio)


def _handler(page, name: str):
    """(the handler as the page calls it, its inputs, its outputs) for the first event bound to ``name``."""
    block = next(f for f in page.fns.values() if f.name == name)
    return block.fn, block.inputs, block.outputs


def test_no_handler_listens_to_change_of_a_control_another_handler_sets(studio):
    # a programmatic update fires .change with stale values (gradio's "Value ... is not in the list of choices")
    page = _page(studio)
    set_by_handlers = {id(block) for f in page.fns.values() for block in f.outputs}
    for f in page.fns.values():
        for block, event in f.targets:
            assert not (event == "change" and id(block) in set_by_handlers), f"{f.name} on {block.elem_id}.change"


def test_a_model_change_clears_what_belonged_to_the_previous_model(studio, run):
    page = _page(studio)
    show_model, _, outputs = _handler(page, "show_model")
    shown = show_model("pggan demo")
    assert set(shown) == set(outputs)  # every control the model change sets is an output of the event
    by_id = {block.elem_id: value for block, value in shown.items() if block.elem_id}
    assert "pggan" in by_id["model-info"]
    assert by_id["layers"]["visible"] is False and by_id["layers"]["value"] == ""  # z only: no layer range
    for name in ("recon", "downloads", "original", "edited", "edit-downloads", "between"):
        assert by_id[name] is None, name
    assert by_id["metrics"] == by_id["failed"] == by_id["command"] == by_id["edit-command"] == ""
    for name in ("target", "from", "to", "component-0", "component-3"):
        assert by_id[name]["choices"] == [] and by_id[name]["value"] is None, name
    assert by_id["strength-0"] == 0
    states = [value for block, value in shown.items() if type(block).__name__ == "State"]
    assert states == [None, None, []]  # the run, the directions, every run of the model (none now)
    stylegan2 = {block.elem_id: value for block, value in show_model("stylegan2 demo").items()}
    assert stylegan2["layers"]["visible"] is True


def test_layers_on_a_model_without_per_layer_ws_are_refused_as_dse_edit_refuses_them(studio):
    from dse_core.app.page import model_view

    assert not model_view(studio, "pggan demo").layers and not model_view(studio, "biggan demo").layers
    assert model_view(studio, "stylegan2 demo").layers
    result = studio.invert("pggan demo", [EXAMPLES / "digit-2.png"])
    direction, folder, _ = studio.directions("pggan demo", "sefa")
    with pytest.raises(DseError, match="--layers 0-1: the pggan generator has no per-layer ws"):
        studio.render_edit(result, "digit-2", direction, [(0, 1.0)], layers="0-1")
    with pytest.raises(DseError, match="--layers 0-1: the pggan generator has no per-layer ws"):
        studio.save_edit(result, "digit-2", direction, folder, [(0, 1.0)], layers="0-1")


def test_picking_directions_sets_choices_and_values_together_and_renders(studio, run):
    page = _page(studio)
    choose, _, outputs = _handler(page, "choose_directions")
    shown = dict(zip([b.elem_id for b in outputs], choose("stylegan2 demo", "pca", None, run, "digit-2", "", None, 0,
                                                          1.0, 0, 0, 0)))
    assert shown["component-1"]["value"] == "1: pca-1" and "1: pca-1" in shown["component-1"]["choices"]
    assert shown["directions-command"]["value"].startswith("dse directions --gan stylegan2 --method pca")
    assert shown["edited"] is not None  # rendered with the new components, not by a .change of each dropdown
    cleared = dict(zip([b.elem_id for b in outputs], choose("stylegan2 demo", "file", None, run, "digit-2", "",
                                                            None, 0, 1.0, 0, 0, 0)))
    assert all(cleared[f"component-{i}"] == {"__type__": "update", "choices": [], "value": None} for i in range(4))
    assert cleared["edited"] is None and cleared["directions-command"]["visible"] is False


def test_a_stale_component_value_is_no_move(studio):
    from dse_core.app.page import _moves

    direction, _, _ = studio.directions("stylegan2 demo", "pca")
    assert _moves(["0: pca-0", "1: sefa-1", None, "", 2.0, 1.0, 1.0, 1.0], direction) == [(0, 2.0)]


def test_the_shown_directions_command_writes_the_pages_direction(studio, tmp_path):
    from dse_core.editing import load_direction
    from dse_core.loading import load_generator

    for label, method in (("stylegan2 demo", "sefa"), ("biggan demo", "pca")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DseWarning)  # BigGAN's PCA of isotropic z: said on the page
            direction, _, command = studio.directions(label, method)
        argv = shlex.split(command)[1:]
        argv[argv.index("-o") + 1] = str(tmp_path / method)
        assert main([*argv, "--device", "cpu"]) == 0
        theirs = load_direction(tmp_path / method / "direction.safetensors", load_generator(f"demo:{label.split()[0]}"))
        torch.testing.assert_close(theirs.vectors, direction.vectors)


def test_an_encoder_alone_gets_a_directions_command_for_its_recorded_generator(tmp_path):
    from dse_core.editing import load_direction

    shutil.copytree(_demo("encoder"), tmp_path / "models" / "e")  # no generator there: its recorded one
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DseWarning)
        [alone] = folder_choices([tmp_path / "models"])
    studio = Studio([alone], workdir=tmp_path / "work")
    direction, _, command = studio.directions(alone.label, "sefa")
    assert "--encoder" not in command and command.startswith("dse directions --gan stylegan2 --method sefa")
    argv = shlex.split(command)[1:]
    argv[argv.index("-o") + 1] = str(tmp_path / "cli")
    assert main([*argv, "--device", "cpu"]) == 0
    G = studio.pair(alone.label)[0]
    torch.testing.assert_close(load_direction(tmp_path / "cli" / "direction.safetensors", G).vectors,
                               direction.vectors)


def test_a_generator_tuning_run_downloads_as_one_zip_that_decodes_elsewhere(studio, tmp_path, monkeypatch):
    import zipfile

    tuned = studio.invert("pggan demo", [EXAMPLES / "digit-5.png"], refine="generator", steps=2)
    archive = studio.archive(tuned)
    assert archive.is_relative_to(studio.workdir) and studio.archive(tuned) == archive  # made once
    assert not list(archive.parent.glob(".*partial"))
    with zipfile.ZipFile(archive) as opened:
        names = set(opened.namelist())
        opened.extractall(tmp_path / "unzipped")
    assert {"latents/digit-5.safetensors", "reconstructions/digit-5.png", "generators/digit-5/model.safetensors",
            "generators/digit-5/config.json", "metrics.json"} <= names
    shutil.rmtree(tuned.out_dir)  # the work folder is gone (the app stopped): the zip alone decodes
    monkeypatch.chdir(tmp_path)  # from any folder: the latents name their tuned G relative to themselves
    assert main(["generate", "unzipped/latents/digit-5.safetensors", "-o", str(tmp_path / "gen")]) == 0
    generated = _png(next((tmp_path / "gen").rglob("*.png")))
    assert np.abs(generated - _png(tmp_path / "unzipped" / "reconstructions" / "digit-5.png")).max() <= 1


# --- temporary files ---------------------------------------------------------------------------------------------

def test_a_temporary_work_folder_is_removed_and_a_chosen_one_kept(tmp_path):
    import atexit

    made = Studio(model_choices())
    assert made.workdir.is_dir()
    made.close()
    assert not made.workdir.exists()
    chosen = Studio(model_choices(), workdir=tmp_path / "mine")
    chosen.close()
    assert chosen.workdir.is_dir()
    registered = []
    monkey = pytest.MonkeyPatch()
    monkey.setattr(atexit, "register", registered.append)
    try:
        at_exit = Studio(model_choices())
    finally:
        monkey.undo()
    registered[0]()  # what runs at exit, if close() was never called
    assert not at_exit.workdir.exists()


def test_dse_app_removes_its_temporary_folder_when_it_stops(monkeypatch):
    pytest.importorskip("gradio", reason="the page needs the app extra")
    import dse_core.app.page as page

    seen = {}
    monkeypatch.setattr(page, "launch", lambda studio, **kw: seen.update(workdir=studio.workdir,
                                                                         there=studio.workdir.is_dir()))
    assert main(["app", "--gan", "stylegan2", "--no-lpips", "--port", str(_free_port())]) == 0
    assert seen["there"] and not seen["workdir"].exists()


def test_loaded_generators_are_bounded_least_recently_used_first():
    from dse_core.app.backend import LruDict

    cache = LruDict(2)
    cache["a"], cache["b"] = 1, 2
    assert cache["a"] == 1
    cache["c"] = 3
    assert list(cache) == ["a", "c"]


def test_gradios_cache_of_shown_images_is_cleaned(studio):
    from dse_core.app.page import CACHE_CLEANUP

    assert _page(studio).delete_cache == CACHE_CLEANUP


def test_an_uploaded_direction_file_is_copied_once(tmp_path):
    studio = Studio(model_choices(), workdir=tmp_path / "work")
    made = _direction_file(tmp_path)
    first = studio.load_direction_file("stylegan2 demo", made)
    assert studio.load_direction_file("stylegan2 demo", made) is first
    assert len(list((studio.workdir / "directions").glob("file-*"))) == 1


def test_examples_are_offered_where_the_checkout_has_them(studio, tmp_path):
    from dse_core.app.backend import example_images

    assert [p.name for p in example_images()] == ["digit-2.png", "digit-3.png", "digit-5.png", "digit-8.png"]
    assert example_images(tmp_path / "nowhere") == []  # installed without them: no examples, no error
    ids = {b.elem_id for b in _page(studio).blocks.values() if getattr(b, "elem_id", None)}
    assert "examples" in ids


# --- the command line ---------------------------------------------------------------------------------------------

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_port_out_of_range_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit):
        main(["app", "--port", "70000"])
    err = capsys.readouterr().err
    assert "a port is 1..65535, got 70000" in err and "Traceback" not in err


def test_a_port_in_use_is_refused_before_any_model_loads(monkeypatch, capsys):
    pytest.importorskip("gradio", reason="the page needs the app extra")
    import socket

    import dse_core.app.backend as backend

    monkeypatch.setattr(backend, "model_choices", lambda *a, **k: pytest.fail("loaded models first"))
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert main(["app", "--port", str(port), "--no-lpips"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dse: error: port {port} is in use: pass --port ") and "\n" not in err
    assert "GRADIO_SERVER_PORT" not in err


def test_listening_on_every_address_prints_an_address_to_open(monkeypatch, capsys):
    pytest.importorskip("gradio", reason="the page needs the app extra")
    import dse_core.app.page as page
    from dse_core.cli.app import page_address

    monkeypatch.setattr(page, "launch", lambda studio, **kw: None)
    port = _free_port()
    assert main(["app", "--gan", "stylegan2", "--host", "0.0.0.0", "--port", str(port), "--no-lpips"]) == 0
    err = capsys.readouterr().err
    assert f"dse app: http://127.0.0.1:{port} (listening on every address: 0.0.0.0)" in err
    assert page_address("::", 8000) == "http://[::1]:8000"
    assert page_address("example.org", 80) == "http://example.org:80"


def test_dse_app_stopped_with_kill_removes_its_temporary_folder(tmp_path):
    pytest.importorskip("gradio", reason="the page needs the app extra")
    import os
    import re
    import signal
    import time
    import urllib.request

    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(tmp_path / "log", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "dse_core.cli", "app", "--gan", "stylegan2", "--port",
                                    str(port), "--no-lpips", "--device", "cpu"], stderr=log, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "log").read_text()
                time.sleep(0.3)
        workdir = Path(re.search(r"files in (.+?), removed", (tmp_path / "log").read_text()).group(1))
        assert workdir.is_dir()
        process.send_signal(signal.SIGTERM)
        # exited as from Ctrl-C (gradio's loop: 0; elsewhere dse's 130), not killed by the signal (-15)
        assert process.wait(timeout=30) in (0, 130)
    finally:
        process.kill()
    assert not workdir.exists()


# --- a class move, the Stop button, interpolation across runs ------------------------------------------------------

def test_a_class_move_renders_as_dse_edit_with_dse_directions_class(studio, tmp_path):
    from dse_core.app.page import model_view

    assert "class" in model_view(studio, "biggan demo").methods  # conditional models only
    assert not {"class"} & {*model_view(studio, "stylegan2 demo").methods, *model_view(studio, "pggan demo").methods}
    result = studio.invert("biggan demo", [EXAMPLES / "digit-3.png"])
    own = result.image_class("digit-3")
    classes = studio.info("biggan demo").class_names
    to = classes[(own + 1) % len(classes)]  # as the class list offers it
    render, _, outputs = _handler(_page(studio), "render")

    def shown(strength: float) -> dict:
        values = render(result, "digit-3", None, "", "class", to, strength, *[None] * 4, *[0] * 4)
        return dict(zip([b.elem_id for b in outputs], values))

    moved = shown(1.0)
    command = moved["directions-command"]["value"]
    assert command.startswith(f"dse directions --gan biggan --method class --classes {own} {(own + 1) % len(classes)}")
    argv = shlex.split(command)[1:]
    argv[argv.index("-o") + 1] = str(tmp_path / "class")
    assert main([*argv, "--device", "cpu"]) == 0
    assert main(["edit", str(result.latents("digit-3")), "--direction", str(tmp_path / "class"), "--strength", "1",
                 "-o", str(tmp_path / "cli")]) == 0
    cli = _png(tmp_path / "cli" / "digit-3" / "00_+1.png")
    assert np.abs(moved["edited"].astype(int) - cli).max() <= 1
    assert np.abs(cli - _png(result.reconstruction("digit-3"))).mean() > 1  # the class did change the image
    still = shown(0.0)["edited"]
    assert np.abs(still.astype(int) - _png(result.reconstruction("digit-3"))).max() <= 1
    # saved, it is dse edit with the page's class direction; its own class is no move
    save, _, _ = _handler(_page(studio), "save_edit")
    _, commands = save(result, "digit-3", moved[None], "", "class", to, 1.0, *[None] * 4, *[0] * 4)
    assert commands.startswith("dse edit ") and f"-class-{own}-" in commands and "--strength 1" in commands
    assert studio.class_move(result, "digit-3", classes[own]) is None


def _target(page, target) -> tuple[str, str]:
    """(elem_id, event) of an event's trigger (gradio keeps the block's id)."""
    block, event = target
    return page.blocks[block].elem_id if isinstance(block, int) else block.elem_id, event


def test_stop_ends_a_running_inversion_and_frees_the_studio(studio):
    import threading
    import time
    from types import SimpleNamespace

    from dse_core.app.backend import InversionCancelled

    stop = threading.Event()
    stop.set()
    with pytest.raises(InversionCancelled, match="inversion cancelled"):  # the Studio's word for it
        studio.invert("stylegan2 demo", [EXAMPLES / "digit-2.png"], stop=stop)
    gr = pytest.importorskip("gradio", reason="the page needs the app extra")
    page = _page(studio)
    invert_index = next(i for i, f in page.fns.items() if f.name == "invert")
    cancelling = [f for f in page.fns.values() if invert_index in f.cancels]
    assert [_target(page, t) for f in cancelling for t in f.targets] == [("stop", "click")]
    cancel = next(f for f in page.fns.values() if f.name == "cancel")  # and tells the Studio: gradio lets it run on
    assert [_target(page, t) for t in cancel.targets] == [("stop", "click")]
    before = set(studio.workdir.glob("run-*"))
    tab, other = SimpleNamespace(session_hash="tab"), SimpleNamespace(session_hash="other")
    threading.Timer(0.5, cancel.fn, [other]).start()  # another tab's Stop: not this tab's inversion
    threading.Timer(1.0, cancel.fn, [tab]).start()  # long before 300 steps are done
    args = ("stylegan2 demo", [str(EXAMPLES / "digit-2.png")], None, None, "latents", 300, "", False, [])
    started = time.monotonic()
    assert page.fns[invert_index].fn(*args, tab) == gr.skip()  # stopped: the page keeps what it showed
    assert time.monotonic() - started >= 1.0  # by its own tab's Stop
    assert set(studio.workdir.glob("run-*")) == before  # nothing half-written left
    done = []  # the lock is free: another thread inverts at once (this tab's Stop is not the next run's)
    worker = threading.Thread(target=lambda: done.append(page.fns[invert_index].fn(*args[:4], "none", 1, "", False,
                                                                                     [], tab)))
    worker.start()
    worker.join(timeout=60)
    assert done and done[0][0].names == ["digit-2"]


def test_interpolation_across_runs_and_dse_edits_refusal_of_two_tuned_generators(studio, run, tmp_path, capsys):
    from types import SimpleNamespace

    page = _page(studio)
    invert = next(f.fn for f in page.fns.values() if f.name == "invert")
    out = invert("stylegan2 demo", [str(EXAMPLES / "digit-5.png")], None, None, "none", 1, "", False, [run],
                 SimpleNamespace(session_hash="tab"))
    other, every, first = out[0], out[1], out[-2]
    assert every == [run, other] and first["choices"] == [run.label("digit-2"), run.label("digit-3"),
                                                          other.label("digit-5")]
    assert first["value"] == other.label("digit-5") and run.label("digit-2").startswith("run-")
    blend, _, _ = _handler(page, "blend")
    ends = [blend(every, run.label("digit-2"), other.label("digit-5"), t) for t in (0.0, 1.0)]
    assert np.abs(ends[0].astype(int) - _png(run.reconstruction("digit-2"))).max() <= 1
    assert np.abs(ends[1].astype(int) - _png(other.reconstruction("digit-5"))).max() <= 1
    # two runs tuned per image (PTI): dse edit --interpolate's one-line message, with its hint
    a, b = (studio.invert("pggan demo", [EXAMPLES / f"digit-{i}.png"], refine="generator", steps=1) for i in (2, 8))
    with pytest.raises(DseError, match="were inverted with different generators") as caught:
        studio.interpolate((a, "digit-2"), (b, "digit-8"), 0.5)
    assert "\n" not in caught.value.message and "--shared-tune" in caught.value.hint
    assert main(["edit", str(a.latents("digit-2")), "--interpolate", str(b.latents("digit-8")),
                 "-o", str(tmp_path / "cli")]) == 2
    said = capsys.readouterr().err
    assert f"dse: error: {caught.value.message}\n" in said and caught.value.hint in said  # the very words
