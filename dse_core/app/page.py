"""``dse app``'s page, laid out with gradio: invert, compare, edit. What each control does is in :mod:`.backend`.

gradio is an optional extra (``pip install "dse-gan[app]"``), imported only here. Every handler turns a
``DseError`` into a message on the page (``gr.Error``), never a traceback.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import attrs

from ..errors import DseError, DseWarning
from .backend import (DIRECTION_METHODS, EXAMPLES, MAX_IMAGES, Studio, class_markdown, example_images,
                      failed_markdown, metrics_markdown)

MISSING = 'dse app needs the optional web page package: pip install "dse-gan[app]"'
EDIT_ROWS = 4  # direction components edited at once: one slider each
REFINEMENTS = ("none", "latents", "encoder", "generator")
# results: lossless PNG (gradio's default WebP would change the pixels the metrics were measured on), and no
# share button: nothing leaves the machine
SHOWN = dict(format="png", interactive=False, buttons=["download", "fullscreen"])
# gradio's cache of shown images (one per slider release): every 10 minutes, files older than an hour removed
CACHE_CLEANUP = (600, 3600)
DOWNLOADS = ("downloads: the whole run as one .zip (with a generator refinement's tuned generators, which its latents "
             "need), then its latents (.safetensors, .npz), reconstructions and grid")
# small GAN outputs (the demos are 32 px) scaled up to the box, pixels kept sharp
CSS = ("#original img, #edited img, #between img {width: 100% !important; height: 200px !important; "
       "object-fit: contain; image-rendering: pixelated} #recon img {image-rendering: pixelated}")


def import_gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine
    try:
        import gradio
    except ImportError:
        raise DseError(MISSING) from None
    return gradio


def build(studio: Studio):
    """The gradio Blocks of the page, bound to ``studio``."""
    import numpy as np

    gr = import_gradio()
    labels = list(studio.choices)
    on_page = functools.partial(_on_page, gr)

    with gr.Blocks(title="dse: GAN inversion", delete_cache=CACHE_CLEANUP) as page:
        gr.Markdown("## dse: invert images into a GAN, compare, edit\nUpload images, see what the encoder makes of "
                    "them, refine, then move along directions in the latent space. Every result is written by the "
                    "same code as the `dse` commands shown under it.")
        with gr.Row():
            model = gr.Dropdown(labels, value=labels[0], label="model", elem_id="model", scale=1)
            info = gr.Markdown(elem_id="model-info")
        run = gr.State(None)
        direction = gr.State(None)
        with gr.Tab("Invert"):
            with gr.Row():
                with gr.Column(scale=1):
                    files = gr.File(file_count="multiple", file_types=["image"], label=f"images (up to {MAX_IMAGES})",
                                    elem_id="upload")
                    pasted = gr.Image(type="filepath", sources=["upload", "clipboard"], label="or paste one image",
                                      elem_id="paste", height=160)
                    examples = example_images()
                    if examples:  # a checkout's examples/ (not installed with the package: then none)
                        gr.Examples([[str(path)] for path in examples], inputs=[pasted], label="or click an example",
                                    elem_id="examples")
                    with gr.Accordion("or draw one", open=False):
                        # numpy: the pad's canvas with the strokes, written to the work folder as drawn; black
                        # with a white brush by default, as the embedded demos' digits are drawn
                        drawing = gr.Sketchpad(np.zeros((256, 256, 3), np.uint8), type="numpy",
                                               label="drawing (white on black, like the demo digits; other colours "
                                                     "in the brush menu)",
                                               canvas_size=(256, 256), elem_id="draw",
                                               brush=gr.Brush(colors=["#ffffff", "#808080", "#000000"],
                                                              default_color="#ffffff"))
                    refine = gr.Radio(list(REFINEMENTS), value="none", label="refinement", elem_id="refine")
                    steps = gr.Slider(1, 300, value=20, step=1, label="refinement steps", elem_id="steps")
                    klass = gr.Dropdown([], value=None, label="class (empty: the encoder predicts it)",
                                        visible=False, elem_id="class")
                    align = gr.Checkbox(False, label="align faces to the FFHQ crop (needs dse-gan[align])",
                                        elem_id="align")
                    go = gr.Button("Invert", variant="primary", elem_id="invert")
                with gr.Column(scale=2):
                    gallery = gr.Gallery(label="input | reconstruction", columns=4, height=240, elem_id="recon",
                                         object_fit="contain", **SHOWN)
                    metrics = gr.Markdown(elem_id="metrics")
                    classes = gr.Markdown(elem_id="classes")
                    failed = gr.Markdown(elem_id="failed")
                    downloads = gr.File(label=DOWNLOADS, file_count="multiple", elem_id="downloads",
                                        interactive=False)
                    command = gr.Code(label="the same with the CLI", language="shell", lines=2, elem_id="command")
        with gr.Tab("Edit"):
            with gr.Row():
                target = gr.Dropdown([], label="image", elem_id="target")
                method = gr.Radio([*DIRECTION_METHODS, "file"], value="sefa", label="directions", elem_id="method")
                direction_file = gr.File(label="direction file (InterFaceGAN .npy, GANSpace .npz, e4e .pt, dse)",
                                         visible=False, elem_id="direction-file")
                layers = gr.Textbox(label="layers (e.g. 0-3; empty: all)", elem_id="layers")
            directions_command = gr.Code(label="these directions with the CLI", language="shell", lines=1,
                                         elem_id="directions-command")
            with gr.Row():
                with gr.Column(scale=3):
                    rows = []
                    for i in range(EDIT_ROWS):
                        with gr.Row():
                            component = gr.Dropdown([], label=f"component {i + 1}", elem_id=f"component-{i}")
                            strength = gr.Slider(-5, 5, value=0, step=0.25, label="strength (std)",
                                                 elem_id=f"strength-{i}")
                        rows.append((component, strength))
                with gr.Column(scale=2):
                    with gr.Row():
                        original = gr.Image(label="reconstruction", elem_id="original", height=220, **SHOWN)
                        edited = gr.Image(label="edited", elem_id="edited", height=220, **SHOWN)
            save = gr.Button("Save this edit", elem_id="save-edit")
            edit_files = gr.File(label="edited latents (.safetensors, .npz) and image", file_count="multiple",
                                 elem_id="edit-downloads", interactive=False)
            edit_command = gr.Code(label="the same with the CLI", language="shell", lines=2, elem_id="edit-command")
            gr.Markdown("### Interpolation between two inverted images")
            with gr.Row():
                first = gr.Dropdown([], label="from", elem_id="from")
                second = gr.Dropdown([], label="to", elem_id="to")
                t = gr.Slider(0, 1, value=0.5, step=0.05, label="t", elem_id="t")
            between = gr.Image(label="between", elem_id="between", height=220, **SHOWN)

        components = [c for c, _ in rows]
        strengths = [s for _, s in rows]
        # choices and value in one update, so that no dropdown holds a value its new choices lack
        empty = functools.partial(gr.update, choices=[], value=None)

        def show_model(label):
            """The model's settings, and everything shown of the previous model cleared (it belonged to that one)."""
            view = model_view(studio, label)
            cleared = {**dict.fromkeys([run, direction, gallery, downloads, original, edited, edit_files, between]),
                       **dict.fromkeys([metrics, classes, failed, command, edit_command], ""),
                       **{block: empty() for block in (target, first, second, *components)},
                       **dict.fromkeys(strengths, 0)}
            return {**cleared, info: view.text, direction_file: gr.update(value=None, visible=False),
                    klass: gr.update(choices=[""] + view.classes, value="", visible=bool(view.classes)),
                    layers: gr.update(value="", visible=view.layers),
                    method: gr.update(choices=view.methods, value=view.methods[0])}

        def invert(label, uploaded, paste, drawn, refinement, n, class_, faces,
                   progress=gr.Progress(track_tqdm=True)):
            paths = uploads(studio, uploaded, paste, drawn)
            result = studio.invert(label, paths, refine=None if refinement == "none" else refinement,
                                   steps=int(n) if refinement != "none" else None, class_=class_ or None,
                                   align=bool(faces), progress=True)
            pairs = [(str(result.input(name)), f"{name}: input") for name in result.names]
            shown = [item for name, pair in zip(result.names, pairs)
                     for item in (pair, (str(result.reconstruction(name)), f"{name}: reconstruction"))]
            out = [p for name in result.names for p in (*result.latent_files(name), result.reconstruction(name))]
            if (result.out_dir / "grid.png").is_file():
                out.append(result.out_dir / "grid.png")
            if result.names:  # the whole run, tuned generators included: what decodes anywhere
                out.insert(0, studio.archive(result))
            names = result.names
            return (result, shown, metrics_markdown(result), class_markdown(result), failed_markdown(result),
                    [str(p) for p in out], result.command,
                    gr.update(choices=names, value=names[0] if names else None),
                    gr.update(choices=names, value=names[0] if names else None),
                    gr.update(choices=names, value=names[-1] if names else None))

        def choose_directions(label, how, upload, result, name, layer_text, *values):
            """The directions picked (the first components in the rows) and the image edited with them."""
            if how == "file" and not upload:
                chosen, names = None, []
            else:
                chosen = studio.load_direction_file(label, upload) if how == "file" else studio.directions(label, how)
                names = _component_names(chosen[0])
            picked = [names[i] if i < len(names) else None for i in range(EDIT_ROWS)]
            shown = render(result, name, chosen, layer_text, *picked, *values)
            command_text = chosen[2] if chosen else ""
            return (chosen, *[gr.update(choices=names, value=value) for value in picked],
                    gr.update(visible=how == "file"), gr.update(value=command_text, visible=bool(command_text)),
                    *shown)

        def render(result, name, chosen, layer_text, *values):
            if result is None or not name:
                return None, None
            if chosen is None:
                return str(result.reconstruction(name)), None
            image, _ = studio.render_edit(result, name, chosen[0], _moves(values, chosen[0]),
                                          layers=_layers(layer_text))
            return str(result.reconstruction(name)), image

        def save_edit(result, name, chosen, layer_text, *values):
            if result is None or not name or chosen is None:
                raise DseError("nothing to save yet", hint="invert an image and pick directions first")
            out, commands = studio.save_edit(result, name, chosen[0], chosen[1], _moves(values, chosen[0]),
                                             layers=_layers(layer_text))
            return [str(p) for p in out], commands

        def blend(result, a, b, fraction):
            if result is None or not a or not b:
                return None
            return studio.interpolate(result, a, b, float(fraction))

        # .input, not .change, on the controls a handler also sets: a programmatic update fires .change with
        # values from before the update (gradio then refuses them: "Value ... is not in the list of choices")
        model_outputs = [info, klass, layers, method, direction_file, run, direction, target, first, second,
                         gallery, metrics, classes, failed, downloads, command, *components, *strengths,
                         original, edited, edit_files, edit_command, between]
        edit_inputs = [run, target, direction, layers, *components, *strengths]
        direction_inputs = [model, method, direction_file, run, target, layers, *strengths]
        direction_outputs = [direction, *components, direction_file, directions_command, original, edited]
        for trigger in (page.load, model.input):
            trigger(on_page(show_model), model, model_outputs).success(
                on_page(choose_directions), direction_inputs, direction_outputs)
        for trigger in (method.input, direction_file.upload, direction_file.clear):  # cleared: no file, no sliders
            trigger(on_page(choose_directions), direction_inputs, direction_outputs)
        inverted = go.click(on_page(invert), [model, files, pasted, drawing, refine, steps, klass, align],
                            [run, gallery, metrics, classes, failed, downloads, command, target, first, second])
        inverted.success(on_page(render), edit_inputs, [original, edited]).success(
            on_page(blend), [run, first, second, t], between)
        for trigger in (target.input, layers.submit, *[s.release for s in strengths], *[c.input for c in components]):
            trigger(on_page(render), edit_inputs, [original, edited])
        save.click(on_page(save_edit), edit_inputs, [edit_files, edit_command])
        for trigger in (t.release, first.input, second.input):
            trigger(on_page(blend), [run, first, second, t], between)
    return page


@attrs.frozen
class ModelView:
    """What the page shows of a model before any inversion."""

    text: str  # the one line under the model list
    classes: list[str]  # a conditional model's classes (the class list); empty: hidden
    methods: list[str]  # direction methods offered ("file" last)
    layers: bool  # whether the layer range applies (per-layer ws); hidden where it does not


def model_view(studio: Studio, label: str) -> ModelView:
    info = studio.info(label)
    return ModelView(info.text, list(info.class_names), [*studio.direction_methods(label), "file"], info.num_ws > 0)


def uploads(studio: Studio, files, pasted: str | None, drawing) -> list[str]:
    """The images to invert: the uploaded files, the pasted image and the drawing (saved as drawn, if any)."""
    drawn = studio.save_drawing(drawing)
    return [*(files or []), *([pasted] if pasted else []), *([str(drawn)] if drawn else [])]


def _component_names(direction) -> list[str]:
    names = direction.names or tuple(f"component {i}" for i in range(len(direction)))
    return [f"{i}: {name}" for i, name in enumerate(names)]


def _layers(text: str | None) -> str | None:
    return (text or "").strip() or None


def _moves(values, direction) -> list[tuple[int, float]]:
    """(component index, strength) for each slider row with a component of ``direction`` chosen (a value left
    from other directions is no move)."""
    chosen, strengths = values[:EDIT_ROWS], values[EDIT_ROWS:]
    names = _component_names(direction)
    return [(names.index(c), float(s)) for c, s in zip(chosen, strengths) if c in names]


def _on_page(gr, handler):
    """``handler`` with a DseError shown as a message on the page, and its DseWarnings as notes."""
    @functools.wraps(handler)
    def wrapped(*args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DseWarning)
            try:
                result = handler(*args, **kwargs)
            except DseError as exc:
                raise gr.Error(str(exc)) from None
        for warning in caught:  # what the CLI prints as "dse: warning: ...", as a note on the page
            if issubclass(warning.category, DseWarning):
                gr.Warning(str(warning.message))
        return result
    return wrapped


def launch(studio: Studio, host: str = "127.0.0.1", port: int = 7860, max_upload_mb: int = 20,
           open_browser: bool = False, block: bool = True):
    """Serve the page; with ``block`` False, return the running gradio Blocks (``.local_url``, ``.close()``)."""
    page = build(studio)
    page.launch(server_name=host, server_port=port, inbrowser=open_browser, share=False,
                max_file_size=f"{max_upload_mb}mb",
                allowed_paths=[str(Path(studio.workdir).resolve()), *([str(EXAMPLES)] if example_images() else [])],
                prevent_thread_lock=not block, quiet=True, css=CSS, footer_links=[])
    return page
