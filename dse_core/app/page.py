"""``dse app``'s page, laid out with gradio: invert, compare, edit. What each control does is in :mod:`.backend`.

gradio is an optional extra (``pip install "dse-gan[app]"``), imported only here. Every handler turns a
``DseError`` into a message on the page (``gr.Error``), never a traceback.
"""

from __future__ import annotations

import collections
import functools
import os
import threading
import warnings
from pathlib import Path

import attrs

from ..errors import DseError, DseWarning
from .backend import (CLASS_METHOD, DIRECTION_METHODS, EXAMPLES, MAX_IMAGES, InversionCancelled, Studio,
                      class_markdown, example_images, failed_markdown, find_image, metrics_markdown)

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
        runs = gr.State([])  # every run of this model in this tab, for interpolating across them
        direction = gr.State(None)
        stops = collections.defaultdict(threading.Event)  # by tab (session): its Stop stops its own inversion only
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
                    with gr.Row():
                        go = gr.Button("Invert", variant="primary", elem_id="invert")
                        stop = gr.Button("Stop", variant="stop", elem_id="stop")
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
                to_class = gr.Dropdown([], value=None, label="to class (from the image's own)", visible=False,
                                       elem_id="to-class")
                class_strength = gr.Slider(0, 1, value=0, step=0.05, label="class move (0: its class, 1: the target)",
                                           visible=False, elem_id="class-strength")
            with gr.Row():
                with gr.Column(scale=3, elem_id="sliders") as sliders:
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
            gr.Markdown("### Interpolation between two inverted images (of any of this model's runs)")
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
                       **dict.fromkeys([*strengths, class_strength], 0), runs: []}
            return {**cleared, info: view.text, direction_file: gr.update(value=None, visible=False),
                    klass: gr.update(choices=[""] + view.classes, value="", visible=bool(view.classes)),
                    to_class: gr.update(choices=view.classes, value=None),
                    layers: gr.update(value="", visible=view.layers),
                    method: gr.update(choices=view.methods, value=view.methods[0])}

        def invert(label, uploaded, paste, drawn, refinement, n, class_, faces, earlier, request,
                   progress=gr.Progress(track_tqdm=True)):
            paths = uploads(studio, uploaded, paste, drawn)
            halt = stops[request.session_hash]
            halt.clear()  # a Stop clicked before this run is not this run's
            try:
                result = studio.invert(label, paths, refine=None if refinement == "none" else refinement,
                                       steps=int(n) if refinement != "none" else None, class_=class_ or None,
                                       align=bool(faces), progress=True, stop=halt)
            except InversionCancelled:  # stopped: the page keeps what it showed (gradio drops the event anyway)
                return gr.skip()
            pairs = [(str(result.input(name)), f"{name}: input") for name in result.names]
            shown = [item for name, pair in zip(result.names, pairs)
                     for item in (pair, (str(result.reconstruction(name)), f"{name}: reconstruction"))]
            out = [p for name in result.names for p in (*result.latent_files(name), result.reconstruction(name))]
            if (result.out_dir / "grid.png").is_file():
                out.append(result.out_dir / "grid.png")
            if result.names:  # the whole run, tuned generators included: what decodes anywhere
                out.insert(0, studio.archive(result))
            names, every = result.names, [*(earlier or []), *([result] if result.names else [])]
            pickable = [r.label(name) for r in every for name in r.names]  # interpolation: this run's and earlier
            return (result, every, shown, metrics_markdown(result), class_markdown(result), failed_markdown(result),
                    [str(p) for p in out], result.command,
                    gr.update(choices=names, value=names[0] if names else None),
                    gr.update(choices=pickable, value=result.label(names[0]) if names else None),
                    gr.update(choices=pickable, value=result.label(names[-1]) if names else None))

        def cancel(request):
            stops[request.session_hash].set()

        def choose_directions(label, how, upload, result, name, layer_text, to, moved, *values):
            """The directions picked (the first components in the rows; a class move: its own class slider) and the
            image edited with them."""
            by_class = how == CLASS_METHOD
            if by_class:  # one component, on its own slider; made from the image's class (render remakes it)
                chosen, names = class_move(result, name, to), []
            elif how == "file" and not upload:
                chosen, names = None, []
            else:
                chosen = studio.load_direction_file(label, upload) if how == "file" else studio.directions(label, how)
                names = _component_names(chosen[0])
            picked = [names[i] if i < len(names) else None for i in range(EDIT_ROWS)]
            shown = draw(result, name, chosen, layer_text, how, moved, [*picked, *values])
            return (chosen, *[gr.update(choices=names, value=value) for value in picked],
                    gr.update(visible=how == "file"), _command_shown(gr, chosen), gr.update(visible=by_class),
                    gr.update(visible=by_class), gr.update(visible=not by_class), *shown)

        def render(result, name, chosen, layer_text, how, to, moved, *values):
            """The image edited; for a class move also its directions, which follow the image and the target."""
            if how != CLASS_METHOD:  # the directions stay (skip: no stale copy written back over newer ones)
                return gr.skip(), gr.skip(), *draw(result, name, chosen, layer_text, how, moved, values)
            chosen = class_move(result, name, to)
            return chosen, _command_shown(gr, chosen), *draw(result, name, chosen, layer_text, how, moved, values)

        def class_move(result, name, to):
            return studio.class_move(result, name, to) if result is not None and name and to else None

        def draw(result, name, chosen, layer_text, how, moved, values):
            """(reconstruction, edited image): nothing without an image, no edit without directions."""
            if result is None or not name:
                return None, None
            if chosen is None:
                return str(result.reconstruction(name)), None
            image, _ = studio.render_edit(result, name, chosen[0], _edit_moves(how, moved, values, chosen[0]),
                                          layers=_layers(layer_text))
            return str(result.reconstruction(name)), image

        def save_edit(result, name, chosen, layer_text, how, to, moved, *values):
            if result is None or not name or chosen is None:
                raise DseError("nothing to save yet", hint="invert an image and pick directions first")
            out, commands = studio.save_edit(result, name, chosen[0], chosen[1],
                                             _edit_moves(how, moved, values, chosen[0]), layers=_layers(layer_text))
            return [str(p) for p in out], commands

        def blend(every, a, b, fraction):
            if not every or not a or not b:
                return None
            return studio.interpolate(find_image(every, a), find_image(every, b), float(fraction))

        # .input, not .change, on the controls a handler also sets: a programmatic update fires .change with
        # values from before the update (gradio then refuses them: "Value ... is not in the list of choices")
        model_outputs = [info, klass, layers, method, direction_file, run, runs, direction, target, first, second,
                         gallery, metrics, classes, failed, downloads, command, *components, *strengths, to_class,
                         class_strength, original, edited, edit_files, edit_command, between]
        edit_inputs = [run, target, direction, layers, method, to_class, class_strength, *components, *strengths]
        render_outputs = [direction, directions_command, original, edited]
        direction_inputs = [model, method, direction_file, run, target, layers, to_class, class_strength, *strengths]
        direction_outputs = [direction, *components, direction_file, directions_command, to_class, class_strength,
                             sliders, original, edited]
        for trigger in (page.load, model.input):
            trigger(on_page(show_model), model, model_outputs).success(
                on_page(choose_directions), direction_inputs, direction_outputs)
        for trigger in (method.input, direction_file.upload, direction_file.clear):  # cleared: no file, no sliders
            trigger(on_page(choose_directions), direction_inputs, direction_outputs)
        inverted = go.click(on_page(_with_request(gr, invert)),
                            [model, files, pasted, drawing, refine, steps, klass, align, runs],
                            [run, runs, gallery, metrics, classes, failed, downloads, command, target, first, second])
        inverted.success(on_page(render), edit_inputs, render_outputs).success(
            on_page(blend), [runs, first, second, t], between)
        # cancels: gradio drops the event (nothing of it shown) but lets a running handler finish: cancel tells
        # the Studio to end it within a step, so that its lock is free for the next inversion
        stop.click(on_page(_with_request(gr, cancel)), None, None, cancels=[inverted])
        for trigger in (target.input, layers.submit, *[s.release for s in strengths], *[c.input for c in components],
                        to_class.input, class_strength.release):
            trigger(on_page(render), edit_inputs, render_outputs)
        save.click(on_page(save_edit), edit_inputs, [edit_files, edit_command])
        for trigger in (t.release, first.input, second.input):
            trigger(on_page(blend), [runs, first, second, t], between)
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


def _edit_moves(how: str, moved, values, direction) -> list[tuple[int, float]]:
    """A class move: its one component at the class slider's strength; else the slider rows' moves."""
    return [(0, float(moved or 0))] if how == CLASS_METHOD else _moves(values, direction)


def _command_shown(gr, chosen):
    """The ``dse directions`` command of these directions, hidden when there is none (a file's, or none chosen)."""
    text = chosen[2] if chosen else ""
    return gr.update(value=text, visible=bool(text))


def _with_request(gr, handler):
    """``handler`` given the browser tab's gr.Request as its ``request``: this module's annotations are strings
    (and gradio is imported late), so the type gradio injects by is set here."""
    handler.__annotations__["request"] = gr.Request
    return handler


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
