"""Computed directions (SeFa, PCA, SVM boundaries, class moves) and `dse directions`: measured effects on the demos."""

import importlib.util
import math
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from dse_core import load_generator
from dse_core.cli import main
from dse_core.editing import Direction, class_direction, edit, pca, sefa, svm_boundary
from dse_core.errors import DseError
from dse_core.latents import write_latents

ROOT = Path(__file__).resolve().parents[1]
ALPHAS = (0.5, 1.0, 2.0, 3.0)
METHODS = {"sefa": lambda G: sefa(G, k=8), "pca": lambda G: pca(G, k=8)}


@pytest.fixture(scope="module")
def demos():
    return {family: load_generator(f"demo:{family}").eval() for family in ("stylegan2", "pggan")}


@pytest.fixture(scope="module")
def digit_classifier():
    """P(digit) of 32 px images: logistic regression on scikit-learn's digits (tools/check_demo_samples.py's recipe)."""
    spec = importlib.util.spec_from_file_location("demo_digits", ROOT / "tools" / "demo_digits.py")
    digits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(digits)
    from sklearn.linear_model import LogisticRegression

    train_x, train_y, _, _ = digits.load_split()
    classifier = LogisticRegression(max_iter=5000).fit(train_x.reshape(len(train_x), 64) / 16, train_y)
    return lambda images: classifier.predict_proba(digits.to_digits(images) / 16)


@torch.no_grad()
def sampled(G, n: int, seed: int) -> dict:
    return G.sample_latents(G.sample_z(n, generator=torch.Generator().manual_seed(seed)))


@pytest.mark.parametrize("family", ["stylegan2", "pggan"])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_components_are_orthonormal_and_std_measures_the_spread(demos, family, method):
    G = demos[family]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = METHODS[method](G)
    isotropic = any("isotropic" in str(w.message) for w in caught)
    assert isotropic == (method == "pca" and family == "pggan")  # PCA of z says its axes are arbitrary
    assert d.latent == ("ws" if family == "stylegan2" else "z") and d.shape == (64,) and len(d) == 8
    assert torch.allclose(d.vectors @ d.vectors.T, torch.eye(8), atol=1e-5)
    assert d.generator["family"] == family and len(d.generator["fingerprint"]) == 64
    x = sampled(G, 5000, seed=5)[d.latent]
    x = x[:, 0] if x.ndim == 3 else x
    measured = (x @ d.vectors.T).std(dim=0)
    assert torch.allclose(measured, d.std, rtol=0.1), (measured, d.std)  # fresh samples agree with the recorded std
    peaks = d.vectors.gather(1, d.vectors.abs().argmax(dim=1, keepdim=True))
    assert (peaks > 0).all()  # the documented sign convention
    if method == "pca":
        assert (d.std[:-1] >= d.std[1:]).all()  # largest variance first


@pytest.mark.filterwarnings("ignore:the pggan generator's z is isotropic")
@pytest.mark.parametrize("family", ["stylegan2", "pggan"])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_image_change_grows_with_the_strength_on_held_out_latents(demos, family, method):
    G = demos[family]
    d = METHODS[method](G)
    latents = sampled(G, 16, seed=424242)  # seeds none of the directions were computed from
    with torch.no_grad():
        base = G.decode(latents)
        for sign in (1, -1):
            edits = edit(latents, d, [sign * a for a in ALPHAS], component=0)
            distances = [float((G.decode(e) - base).abs().mean()) for e in edits]
            print(f"{family} {method} component 0, alpha {[sign * a for a in ALPHAS]}: mean |dx| "
                  + ", ".join(f"{v:.4f}" for v in distances))
            assert all(a < b for a, b in zip(distances, distances[1:])), distances
            assert distances[0] > 0.01  # half a std already moves the pixels


def _designed_rows(n: int, u: torch.Tensor, v: torch.Tensor, theta: float) -> torch.Tensor:
    """n rows cos(t) u + sin(t) v with t cycling 0, +theta, -theta (so sum cos*sin = 0), each scaled at random:
    after SeFa's row normalization, A^T A has u as its top eigenvector and v as its second."""
    t = torch.tensor([(0.0, theta, -theta)[i % 3] for i in range(n)])
    if n % 3 == 2:
        t[-1] = 0.0  # keep the +theta and -theta counts equal
    scales = torch.rand(n, 1) * 3 + 0.2
    return (torch.cos(t)[:, None] * u + torch.sin(t)[:, None] * v) * scales


def _affines(G):
    return [m for m in G.modules() if hasattr(m, "affine")]


def test_sefa_finds_the_top_eigenvector_of_hand_made_style_weights():
    from dse_plugin_pggan import Generator as PGGAN, PGGANConfig
    from dse_plugin_stylegan2 import Generator, StyleGAN2Config

    torch.manual_seed(0)
    w_dim = 12
    u, v, other = torch.linalg.qr(torch.randn(w_dim, 3)).Q.T
    G = Generator(StyleGAN2Config(resolution=16, channels={4: 8, 8: 8, 16: 8}, z_dim=8, w_dim=w_dim, mapping_layers=2))
    with torch.no_grad():
        for layer in _affines(G):
            affine = layer.affine
            affine.weight.copy_(_designed_rows(len(affine.weight), u, v, 0.8) / affine.weight_gain)
        first = G.synthesis.b4.conv1.affine  # the only reader of ws[:, 0]
        first.weight.copy_(_designed_rows(8, other, v, 0.5) / first.weight_gain)
    d = sefa(G, k=2)
    assert abs(float(d.vectors[0] @ u)) > 0.9999 and abs(float(d.vectors[1] @ v)) > 0.9999
    only_first = sefa(G, layers=[0], k=1)  # ws[:, 0] is read by b4.conv1 alone: its rows lean on `other`
    assert abs(float(only_first.vectors[0] @ other)) > 0.9999 and only_first.layers == (0,)

    P = PGGAN(PGGANConfig(resolution=8, channels={4: 4, 8: 4}, z_dim=w_dim))
    with torch.no_grad():
        P.b4.dense.weight.copy_(_designed_rows(64, u, v, 0.8) / P.b4.dense.weight_gain)
    assert abs(float(sefa(P, k=1).vectors[0] @ u)) > 0.9999


@pytest.mark.parametrize("family", ["stylegan2", "stylegan"])
def test_style_weights_are_exactly_the_affines_reading_each_w(family):
    """Moving ws[:, i] within the null space of style_weights([i]) leaves the image unchanged; moving it within
    their row space changes it: the rows are exactly the maps that read ws[:, i]."""
    torch.manual_seed(0)
    if family == "stylegan2":
        from dse_plugin_stylegan2 import Generator, StyleGAN2Config as Config
    else:
        from dse_plugin_stylegan import Generator, StyleGANConfig as Config
    G = Generator(Config(resolution=16, channels={4: 8, 8: 8, 16: 8}, z_dim=8, w_dim=40, mapping_layers=2)).eval()
    with torch.no_grad():
        for p in G.synthesis.parameters():
            p.add_(torch.randn_like(p) * 0.3)
        ws = G.mapping(torch.randn(2, 8))
        base = G.synthesis(ws)
        for i in range(G.num_ws):
            rows = G.style_weights([i])
            assert rows.shape[1] == 40 and rows.shape[0] < 40
            _, _, vh = torch.linalg.svd(rows.double())
            null, span = vh[rows.shape[0]:].float(), vh[: rows.shape[0]].float()
            moved = ws.clone()
            moved[:, i] += 3 * null.sum(dim=0)
            assert torch.allclose(G.synthesis(moved), base, atol=1e-4), f"ws {i}: another layer reads it too"
            moved = ws.clone()
            moved[:, i] += 3 * span[0]
            assert (G.synthesis(moved) - base).abs().max() > 1e-2, f"ws {i}: its rows are not what reads it"
        assert sum(len(G.style_weights([i])) for i in range(G.num_ws)) == len(G.style_weights())


@pytest.mark.parametrize("family", ["stylegan2", "pggan"])
def test_an_svm_boundary_moves_a_digit_classifier_on_held_out_latents(demos, digit_classifier, family):
    G = demos[family]
    name = G.latent_names[0]
    train = sampled(G, 2000, seed=1)
    with torch.no_grad():
        labels = torch.as_tensor(digit_classifier(G.decode(train)).argmax(axis=1) == 1).long()  # "is it a 1"
    d = svm_boundary(train[name], labels, name)
    assert d.latent == name and d.shape == (64,) and math.isclose(float(d.vectors.norm()), 1, rel_tol=1e-5)
    assert d.source["balanced_accuracy"] > 0.85 and d.source["positives"] == int(labels.sum())
    held = sampled(G, 300, seed=777)
    alphas = (-6, -3, 0, 3, 6)
    with torch.no_grad():
        p1 = [float(digit_classifier(G.decode(e))[:, 1].mean()) for e in edit(held, d, alphas)]
    print(f"{family}: {int(labels.sum())}/2000 ones, train accuracy {d.source['train_accuracy']}; held-out P(1) at "
          + ", ".join(f"{a:+d} std {p:.3f}" for a, p in zip(alphas, p1)))
    assert all(a < b for a, b in zip(p1, p1[1:])), p1
    assert p1[3] > 1.2 * p1[2] and p1[4] > 1.5 * p1[2]  # +alpha: more ones
    assert p1[1] < 0.8 * p1[2] and p1[0] < 0.67 * p1[2]  # -alpha: fewer


def test_svm_boundary_needs_two_labelled_classes_and_scikit_learn(monkeypatch):
    x = torch.randn(20, 4)
    with pytest.raises(DseError, match="both labels"):
        svm_boundary(x, torch.zeros(20), "z")
    with pytest.raises(DseError, match="0 or 1"):
        svm_boundary(x, torch.arange(20) % 3, "z")
    monkeypatch.setitem(sys.modules, "sklearn.svm", None)  # as if scikit-learn were not installed
    with pytest.raises(DseError, match="scikit-learn") as info:
        svm_boundary(x, torch.arange(20) % 2, "z")
    assert "dse-gan[edit]" in str(info.value)


def test_a_class_direction_at_strength_1_decodes_exactly_like_class_b():
    from dse_plugin_biggan import FAMILY, Generator

    torch.manual_seed(0)
    G = Generator(FAMILY.tiny_config).eval()
    d = class_direction(G, 1, 3)
    assert d.latent == "c" and d.names == ("1->3",) and d.std is None
    d.check(G)
    z = G.sample_z(4, 0.5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        as_a = G.sample_latents(z, G.class_vector([1] * 4), 0.5)
        as_b = G.decode(G.sample_latents(z, G.class_vector([3] * 4), 0.5))
        moved, halfway = (G.decode(e) for e in edit(as_a, d, [1.0, 0.5]))
    assert torch.equal(moved, as_b)
    assert (halfway - as_b).abs().mean() > 1e-3 and (halfway - G.decode(as_a)).abs().mean() > 1e-3
    with pytest.raises(DseError, match="same class"):
        class_direction(G, 2, 2)


def test_the_cli_writes_a_direction_that_loads_back_equal(tmp_path, capsys):
    out = tmp_path / "dirs"
    assert main(["directions", "--gan", "stylegan2", "--method", "sefa", "-n", "4", "--layers", "0-3",
                 "-o", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("sefa-0\tstd ") and len(printed) == 5
    loaded = Direction.load(out / "direction.safetensors")
    assert (out / "direction.json").is_file()
    made = sefa(load_generator("demo:stylegan2"), layers=[0, 1, 2, 3], k=4)
    assert torch.equal(loaded.vectors, made.vectors) and torch.equal(loaded.std, made.std)
    assert loaded.layers == (0, 1, 2, 3) and loaded.names == made.names and loaded.latent == "ws"
    assert loaded.generator["fingerprint"] == made.generator["fingerprint"] and loaded.source == made.source
    assert loaded.generator["spec"] == "demo:stylegan2"


def test_the_cli_fits_an_svm_to_labelled_latent_files(tmp_path, capsys):
    G = load_generator("demo:stylegan2")
    latents = sampled(G, 80, seed=3)["ws"]
    truth = torch.nn.functional.normalize(torch.randn(64), dim=0)
    projections = latents[:, 0] @ truth
    folder = tmp_path / "latents"
    rows = ["name,label"]
    for i, ws in enumerate(latents):
        write_latents(folder, f"img{i:03d}", {"ws": ws[None]}, {"generator": "demo:stylegan2"}, ["safetensors"])
        rows.append(f"img{i:03d},{int(projections[i] > projections.median())}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    assert main(["directions", "--method", "svm", "--latents", str(folder), "--labels", str(tmp_path / "labels.csv"),
                 "-o", str(tmp_path / "smile"), "--device", "cpu"]) == 0  # the generator recorded in the latents
    assert "train accuracy" in capsys.readouterr().out
    d = Direction.load(tmp_path / "smile" / "direction.safetensors")
    assert d.latent == "ws" and d.source["samples"] == 80 and d.source["train_accuracy"] > 0.95
    assert float(d.vectors[0] @ truth) > 0.5  # points towards label 1


def test_the_cli_refuses_an_svm_without_labels_in_one_line(tmp_path, capsys):
    assert main(["directions", "--gan", "stylegan2", "--method", "svm", "--latents", str(tmp_path),
                 "-o", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dse: error: --method svm") and len(err.splitlines()) == 2  # the error and its hint
    assert not (tmp_path / "d").exists()
    assert main(["directions", "--gan", "pggan", "--method", "sefa", "--layers", "0-3", "-o", str(tmp_path / "d")]) == 2
    assert "no per-layer ws" in capsys.readouterr().err


def test_directions_help_imports_no_torch():
    code = ("import sys\nfrom dse_core.cli import main\ntry:\n    main(['directions', '--help'])\nexcept SystemExit:\n"
            "    pass\nprint('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--method" in done.stdout, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
