"""Hub I/O against a local stand-in for the Hub API (tests/hub_stand_in.py): real HTTP, real huggingface_hub.

Covers push, pull, revision pinning, checksum mismatch (refused, then re-fetched), offline mode,
private repos, and the dse models / pull / push commands.
"""

import copy
import hashlib
import json
from pathlib import Path

import pytest
import torch
import yaml
from hub_stand_in import TOKEN, go_offline

from dse_core import ChecksumError, DseError, DseWarning, load_generator, testing
from dse_core.cli import main
from dse_core.models.format import generator_fingerprint
from dse_core.images import save_image

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning")  # huggingface_hub's LFS PUT

FIXTURES = Path(__file__).parent / "fixtures" / "parity"
ROSINALITY = FIXTURES / "stylegan2-rosinality" / "checkpoint.pt"


def outputs(G, seed=0):
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return G(z, noise_mode="const")


def entry(id, repo, file, sha256=None, revision="main", **fields):
    check = {"sha256": sha256} if sha256 else {"unverified": True, "unverified_reason": "test entry"}
    return {"id": id, "kind": "generator", "family": "stylegan2", "plugin": "dse-plugin-stylegan2", "format": "rosinality",
            "resolution": 32, "dataset": "test", "license": "Nvidia Source Code License-NC",
            "license_url": "https://nvlabs.github.io/stylegan2/license.html", "redistribution": "non-commercial",
            "source_url": "https://example.org/weights", "hub": {"repo_id": repo, "file": file, "revision": revision, **check},
            **fields}


def registry_with(*items):
    return testing.host(checkpoints=items, installed=True, name="test-registry")


def blobs(repo_id):
    from huggingface_hub import constants

    folder = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "blobs"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def perturbed(G, amount=0.5):
    other = copy.deepcopy(G)
    with torch.no_grad():
        next(other.parameters()).add_(amount)
    return other


def test_push_then_pull_and_load_gives_the_same_outputs(hub_server, tiny_generator):
    info = tiny_generator.push_to_hub("alice/g16")
    repo = hub_server.repos["alice/g16"]
    tree = repo.commits[repo.branches["main"]]
    assert set(tree) == {"config.json", "model.safetensors", "README.md"}
    assert tree["model.safetensors"][1] and not tree["config.json"][1]  # the weights went through LFS
    card = tree["README.md"][0].decode()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "dse" and "gan-inversion" in meta["tags"] and 'load_generator("alice/g16")' in card
    G = load_generator("alice/g16")
    assert torch.equal(outputs(G), outputs(tiny_generator))
    assert G.origin["repo_id"] == "alice/g16" and G.origin["revision"] == info.oid
    assert generator_fingerprint(G) == generator_fingerprint(tiny_generator)


def test_revision_pinning_loads_the_commit_asked_for(hub_server, tiny_generator):
    from dse_plugin_stylegan2 import Generator

    first = tiny_generator.push_to_hub("alice/g").oid
    changed = perturbed(tiny_generator)
    second = changed.push_to_hub("alice/g").oid
    assert first != second
    assert torch.equal(outputs(load_generator("alice/g")), outputs(changed))  # main: the latest commit
    for pinned in (load_generator("alice/g", revision=first), load_generator(f"alice/g@{first}"),
                   Generator.from_pretrained("alice/g", revision=first)):
        assert torch.equal(outputs(pinned), outputs(tiny_generator))
        assert pinned.origin["revision"] == first
    on_branch = tiny_generator.push_to_hub("alice/g", revision="v1").oid  # a new branch from main
    G = load_generator("alice/g@v1")
    assert G.origin["revision"] == on_branch and torch.equal(outputs(G), outputs(tiny_generator))
    assert torch.equal(outputs(load_generator("alice/g")), outputs(changed))  # main did not move
    with pytest.raises(DseError, match="alice/g@nope: no such revision"):
        load_generator("alice/g@nope")
    # a registry entry pinned to the first commit keeps loading it
    data = (hub_server.repos["alice/g"].commits[first]["model.safetensors"][0])
    pinned_entry = entry("alice-g-first", "alice/g", "model.safetensors", sha256(data), first, format="dse", resolution=16)
    with registry_with(pinned_entry):
        G = load_generator("alice-g-first")
        assert torch.equal(outputs(G), outputs(tiny_generator)) and G.origin["registry_id"] == "alice-g-first"


def test_a_corrupt_download_is_refused_then_refetched_once_fixed(hub_server):
    data = ROSINALITY.read_bytes()
    commit = hub_server.seed("nv/sg2", {"g.pt": data})
    hub_server.corrupt.add(("nv/sg2", "g.pt"))
    with registry_with(entry("test-sg2", "nv/sg2", "g.pt", sha256(data), commit)):
        with pytest.warns(DseWarning, match="fetching it again"), pytest.raises(ChecksumError) as err:
            load_generator("test-sg2")
        assert sha256(data) in str(err.value) and "refused" in str(err.value) and "pinned in the registry" in str(err.value)
        assert blobs("nv/sg2") == []  # nothing corrupt stays in the cache

        hub_server.corrupt.clear()
        G = load_generator("test-sg2")
        assert torch.equal(outputs(G), outputs(load_generator(ROSINALITY)))  # read by the family's rosinality reader
        assert G.origin == {"spec": "test-sg2", "registry_id": "test-sg2", "repo_id": "nv/sg2", "file": "g.pt",
                            "revision": commit, "license": "Nvidia Source Code License-NC",
                            "license_url": "https://nvlabs.github.io/stylegan2/license.html"}

        [blob] = blobs("nv/sg2")  # damaged at rest: found on the next load, evicted and fetched again
        blob.chmod(0o644)
        blob.write_bytes(b"\0" + data[1:])
        with pytest.warns(DseWarning, match="removed from the cache, fetching it again"):
            load_generator("test-sg2")
        assert sha256(blobs("nv/sg2")[0].read_bytes()) == sha256(data)


def test_a_model_repo_file_is_checked_against_the_hubs_own_hash(hub_server, tiny_generator):
    tiny_generator.push_to_hub("alice/g")
    hub_server.corrupt.add(("alice/g", "model.safetensors"))
    with pytest.raises(ChecksumError, match="the Hub file metadata"):
        load_generator("alice/g")
    hub_server.corrupt.clear()
    assert torch.equal(outputs(load_generator("alice/g")), outputs(tiny_generator))


def test_offline_a_cached_model_loads_without_network_and_a_miss_names_the_fix(hub_server, tiny_generator, monkeypatch):
    commit = tiny_generator.push_to_hub("alice/g").oid
    data = ROSINALITY.read_bytes()
    hub_server.seed("nv/sg2", {"g.pt": data})
    with registry_with(entry("test-sg2", "nv/sg2", "g.pt", sha256(data)), entry("test-missing", "nv/none", "g.pt")):
        load_generator("alice/g")
        load_generator("test-sg2")
        seen = len(hub_server.requests)
        go_offline(monkeypatch)
        for spec in ("alice/g", f"alice/g@{commit}"):
            G = load_generator(spec)
            assert torch.equal(outputs(G), outputs(tiny_generator)) and G.origin["revision"] == commit
        assert load_generator("test-sg2").origin["registry_id"] == "test-sg2"
        assert len(hub_server.requests) == seen  # not one request
        with pytest.raises(DseError) as err:
            load_generator("alice/other@v2")
        text = str(err.value)
        assert "alice/other@v2" in text and "HF_HUB_OFFLINE" in text and "`dse pull alice/other --revision v2`" in text
        with pytest.raises(DseError, match="run `dse pull test-missing`"):
            load_generator("test-missing")
        with pytest.raises(DseError, match="cannot push to alice/g: HF_HUB_OFFLINE is set"):
            tiny_generator.push_to_hub("alice/g")
        assert len(hub_server.requests) == seen


def test_no_network_is_noticed_at_once_and_the_cache_still_serves(hub_server, tiny_generator, monkeypatch):
    import socket

    import dse_core.models.hub

    tiny_generator.push_to_hub("alice/g")
    load_generator("alice/g")
    seen = len(hub_server.requests)

    def no_dns(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(dse_core.models.hub.socket, "getaddrinfo", no_dns)  # HF_HUB_OFFLINE is not set
    dse_core.models.hub._unresolvable.cache_clear()
    assert torch.equal(outputs(load_generator("alice/g")), outputs(tiny_generator))
    with pytest.raises(DseError, match=r"alice/other@main is not in the local Hugging Face cache and the Hub cannot be "
                                       r"reached \(127.0.0.1 cannot be resolved"):
        load_generator("alice/other")
    with pytest.raises(DseError, match="cannot push to alice/g: 127.0.0.1 cannot be resolved"):
        tiny_generator.push_to_hub("alice/g")
    assert len(hub_server.requests) == seen  # no request, and none of huggingface_hub's retries
    dse_core.models.hub._unresolvable.cache_clear()


@pytest.mark.parametrize("endpoint, proxy, no_proxy, unreachable", [
    ("https://huggingface.co", {}, "", True),
    ("https://huggingface.co", {"HTTPS_PROXY": "http://proxy:3128"}, "", False),  # the proxy resolves names
    ("http://hf-mirror.internal", {"HTTP_PROXY": "http://proxy:3128"}, "", False),
    ("http://hf-mirror.internal", {"HTTP_PROXY": "http://proxy:3128"}, "hf-mirror.internal", True),  # bypassed
])
def test_no_network_check_respects_proxies(monkeypatch, endpoint, proxy, no_proxy, unreachable):
    import socket

    import dse_core.models.hub

    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    for var, value in proxy.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    lookups = []

    def no_dns(host, *args):
        lookups.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(dse_core.models.hub.socket, "getaddrinfo", no_dns)
    dse_core.models.hub._unresolvable.cache_clear()
    try:
        assert (dse_core.models.hub._unresolvable(endpoint) is not None) == unreachable
        dse_core.models.hub._unresolvable(endpoint)
        assert len(lookups) == (1 if unreachable else 0)  # asked once per endpoint
    finally:
        dse_core.models.hub._unresolvable.cache_clear()


def test_a_private_repo_needs_the_token(hub_server, tiny_generator, monkeypatch):
    tiny_generator.push_to_hub("alice/secret", private=True)
    assert hub_server.repos["alice/secret"].private
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(DseError, match="alice/secret@main: no such repository on the Hub .*set HF_TOKEN"):
        load_generator("alice/secret")
    with pytest.raises(DseError, match="401"):
        tiny_generator.push_to_hub("alice/other")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert torch.equal(outputs(load_generator("alice/secret")), outputs(tiny_generator))


def write_images(G, folder, n=2):
    folder.mkdir()
    with torch.no_grad():
        for i, image in enumerate(G(torch.randn(n, G.z_dim)).clamp(-1, 1)):
            save_image(image, folder / f"img{i}.png")


def test_train_push_pull_invert_through_the_hub(hub_server, tiny_generator, tmp_path, capsys):
    tiny_generator.push_to_hub("alice/g")
    perturbed(tiny_generator).push_to_hub("alice/other")
    run = tmp_path / "run"
    assert main(["train", "--generator", "alice/g", "-o", str(run), "--samples", "4", "--batch-size", "2",
                 "--lpips-weight", "0", "--grid-every", "1", "--checkpoint-every", "100", "--device", "cpu", "--quiet"]) == 0
    record = json.loads((run / "encoder" / "config.json").read_text())["source"]["generator"]
    assert record["repo_id"] == "alice/g" and record["fingerprint"] == generator_fingerprint(tiny_generator)
    capsys.readouterr()

    assert main(["push", str(run), "--repo-id", "bob/enc"]) == 0
    assert "pushed stylegan2 encoder -> bob/enc@main" in capsys.readouterr().out
    repo = hub_server.repos["bob/enc"]
    tree = repo.commits[repo.branches["main"]]
    assert set(tree) == {"config.json", "model.safetensors", "README.md", "reconstruction.png", "metrics.json"}
    card = tree["README.md"][0].decode()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["base_model"] == "alice/g" and meta["license"] == "unknown"
    assert "![reconstructions](reconstruction.png)" in card and "## Final training loss" in card
    assert "dse invert --generator alice/g --encoder bob/enc" in card

    assert main(["pull", "bob/enc"]) == 0
    assert "license: unknown" in capsys.readouterr().out
    write_images(tiny_generator, tmp_path / "in")
    common = ["--no-lpips", "--device", "cpu", "--quiet", "--encoder", "bob/enc", str(tmp_path / "in")]
    assert main(["invert", "--generator", "alice/g", "-o", str(tmp_path / "ok"), *common]) == 0
    assert main(["invert", "--generator", "alice/other", "-o", str(tmp_path / "no"), *common]) == 2
    err = capsys.readouterr().err
    assert "encoder bob/enc was trained for generator 'alice/g' (alice/g@" in err and "not for 'alice/other'" in err
    assert "--force" in err
    assert main(["invert", "--generator", "alice/other", "-o", str(tmp_path / "forced"), "--force", *common]) == 0
    assert "dse: warning: encoder bob/enc was trained for" in capsys.readouterr().err

    # a branch: dse push --revision, then dse pull / invert of owner/name@branch and pull --revision
    assert main(["push", str(run), "--repo-id", "bob/enc", "--revision", "v1"]) == 0
    assert "pushed stylegan2 encoder -> bob/enc@v1" in capsys.readouterr().out
    assert set(hub_server.repos["bob/enc"].branches) == {"main", "v1"}
    v1 = hub_server.repos["bob/enc"].branches["v1"]
    assert main(["pull", "bob/enc@v1"]) == 0 and f"bob/enc@{v1}" in capsys.readouterr().out
    assert main(["pull", "bob/enc", "--revision", "v1"]) == 0 and f"bob/enc@{v1}" in capsys.readouterr().out
    assert main(["invert", "--generator", "alice/g", "-o", str(tmp_path / "v1"), "--no-lpips", "--quiet",
                 "--encoder", "bob/enc@v1", str(tmp_path / "in")]) == 0


def test_models_pull_check_and_push_of_converted_weights(hub_server, tmp_path, capsys):
    data = ROSINALITY.read_bytes()
    hub_server.seed("nv/sg2", {"g.pt": data})
    with registry_with(entry("test-sg2", "nv/sg2", "g.pt", sha256(data)), entry("test-loose", "nv/sg2", "g.pt")):
        assert main(["models"]) == 0
        out = capsys.readouterr().out
        assert "test-sg2 " in out and "test-loose *" in out and "stylegan2-ffhq-1024 *" in out
        assert main(["pull", "test-sg2"]) == 0
        out = capsys.readouterr().out
        assert "nv/sg2@main g.pt ->" in out and "license: Nvidia Source Code License-NC" in out and "non-commercial" in out
        assert main(["pull", "test-loose"]) == 0
        assert f"not pinned (test entry): sha256 of this download {sha256(data)}" in capsys.readouterr().out
        assert main(["models", "--json"]) == 0
        rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)["models"]}
        assert rows["test-sg2"]["cached"] == "yes" and rows["stylegan2-ffhq-1024"]["cached"] == "no"
        assert main(["models", "--check"]) == 0
        assert "test-loose: unverified: sha256" in capsys.readouterr().out

        assert main(["convert", "test-sg2", "-o", str(tmp_path / "conv")]) == 0
        source = json.loads((tmp_path / "conv" / "config.json").read_text())["source"]
        assert source["origin"]["registry_id"] == "test-sg2" and source["sha256"] == sha256(data)
        capsys.readouterr()
        assert main(["push", str(tmp_path / "conv"), "--repo-id", "carol/sg2", "--private"]) == 0
        err = capsys.readouterr().err
        assert "dse: warning: these weights are converted from test-sg2" in err and "non-commercial use" in err
        tree = hub_server.repos["carol/sg2"].commits[hub_server.repos["carol/sg2"].branches["main"]]
        meta = yaml.safe_load(tree["README.md"][0].decode().split("---")[1])
        assert (meta["license"], meta["license_name"]) == ("other", "nvidia-source-code-license-nc")

        [blob] = blobs("nv/sg2")
        blob.chmod(0o644)
        blob.write_bytes(b"\0" + data[1:])
        assert main(["models", "--check"]) == 1
        assert "test-sg2: MISMATCH:" in capsys.readouterr().out


def test_a_registry_encoder_is_checked_against_the_generator_id_it_inverts(hub_server):
    from dse_core import load_encoder

    data, enc = ROSINALITY.read_bytes(), (FIXTURES / "dse-encoder-stylegan2" / "E_model_ep6_iter29999.pth").read_bytes()
    hub_server.seed("nv/sg2", {"g.pt": data, "g2.pt": data})
    hub_server.seed("authors/dse", {"E.pth": enc})
    authors = entry("test-enc", "authors/dse", "E.pth", sha256(enc), kind="encoder", inverts="test-sg2", format="auto")
    with registry_with(entry("test-sg2", "nv/sg2", "g.pt", sha256(data)), entry("test-sg2b", "nv/sg2", "g2.pt"), authors):
        G = load_generator("test-sg2")
        E = load_encoder("test-enc", generator=G)  # the authors' .pth records nothing: the registry says what it inverts
        assert E.origin["registry_id"] == "test-enc"
        with pytest.raises(DseError, match="encoder test-enc was trained for generator 'test-sg2'.*not for 'test-sg2b'"):
            load_encoder("test-enc", generator=load_generator("test-sg2b"))
        with pytest.warns(DseWarning, match="records only 'test-sg2': cannot check"):
            load_encoder("test-enc", generator=load_generator(ROSINALITY))


def test_models_check_covers_extra_files_by_the_hubs_git_hash(hub_server, capsys):
    data, config = ROSINALITY.read_bytes(), b'{"note": "a small file the reader needs"}\n'
    hub_server.seed("nv/extra", {"g.pt": data, "cfg.json": config})
    item = entry("test-extra", "nv/extra", "g.pt")
    item["hub"]["extra_files"] = ["cfg.json"]
    with registry_with(item):
        assert main(["pull", "test-extra"]) == 0
        assert main(["models", "--check"]) == 0
        assert "test-extra: unverified" in capsys.readouterr().out
        [small] = [b for b in blobs("nv/extra") if b.read_bytes() == config]  # stored under its git sha1
        assert len(small.name) == 40
        small.chmod(0o644)
        small.write_bytes(config.replace(b"small", b"SMALL"))
        assert main(["models", "--check"]) == 1
        out = capsys.readouterr().out
        assert "test-extra: MISMATCH:" in out and "cfg.json: hashes to" in out and f"the Hub says {small.name}" in out
