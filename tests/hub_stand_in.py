"""A local stand-in for the Hugging Face Hub API, for tests: real HTTP on 127.0.0.1, real huggingface_hub.

It implements only what huggingface_hub 2.x calls for the operations dse uses, with the
routes and headers read from huggingface_hub's source:

- ``GET  /api/models/{repo}[/revision/{rev}]``   model info (``sha`` = the commit a revision resolves to)
- ``GET  /api/models/{repo}/tree/{rev}``         file listing (git oid, size, LFS sha256) for snapshot_download
- ``HEAD|GET /{repo}/resolve/{rev}/{path}``      file metadata and bytes: ``X-Repo-Commit``, ``ETag`` (git sha1, or
  the sha256 for LFS files, with ``X-Linked-Etag`` / ``X-Linked-Size``), errors as ``X-Error-Code``
- ``POST /api/repos/create``, ``POST /api/models/{repo}/branch/{branch}``
- ``POST /api/validate-yaml``                    the model card's YAML front matter must parse
- ``POST /api/models/{repo}/preupload/{rev}``    upload mode (lfs / regular) and current oid of each file
- ``POST /{repo}.git/info/lfs/objects/batch``, ``PUT /lfs-upload/{oid}``   LFS basic transfer, sha256-checked
- ``POST /api/models/{repo}/commit/{rev}``       ndjson commit: a new commit on the branch

Private repos need ``Authorization: Bearer <token>``; writes need it too. ``corrupt`` holds
(repo, path) pairs whose bytes are served damaged (same size, so only a hash check sees it);
``requests`` logs every request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

LFS_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".pkl", ".png")
TOKEN = "hf_stand_in_token"


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    sha = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n".encode()


class Repo:
    def __init__(self, private: bool):
        self.private = private
        self.branches: dict[str, str] = {}
        self.commits: dict[str, dict[str, tuple[bytes, bool]]] = {}  # sha -> {path: (bytes, is_lfs)}

    def resolve(self, revision: str) -> str | None:
        if revision in self.branches:
            return self.branches[revision]
        return revision if revision in self.commits else None


class HubStandIn:
    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.corrupt: set[tuple[str, str]] = set()
        self.requests: list[tuple[str, str]] = []
        self._counter = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def start(self) -> "HubStandIn":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- server-side helpers for tests ---------------------------------------------------------
    def create(self, repo_id: str, private: bool = False) -> Repo:
        with self._lock:
            repo = self.repos.setdefault(repo_id, Repo(private))
            if not repo.branches:
                repo.branches["main"] = self._commit(repo, {}, None)
            return repo

    def seed(self, repo_id: str, files: dict[str, bytes], branch: str = "main") -> str:
        """Commit ``files`` (on top of the branch) as the Hub would after an upload; returns the commit."""
        repo = self.create(repo_id)
        with self._lock:
            tree = dict(repo.commits[repo.branches[branch]])
            tree.update({p: (data, p.endswith(LFS_SUFFIXES)) for p, data in files.items()})
            repo.branches[branch] = self._commit(repo, tree, repo.branches[branch])
            return repo.branches[branch]

    def _commit(self, repo: Repo, tree: dict, parent: str | None) -> str:
        self._counter += 1
        sha = hashlib.sha1(f"{parent}:{self._counter}:{sorted(tree)}".encode()).hexdigest()
        repo.commits[sha] = tree
        return sha

    def next_id(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter


def _handler(hub: HubStandIn):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stalls

        def log_message(self, *args):  # quiet
            pass

        # -- plumbing -------------------------------------------------------------------------
        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, status: int, data, headers: dict | None = None) -> None:
            self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})})

        def _error(self, status: int, code: str | None, message: str, head: bool = False, extra: dict | None = None):
            headers = {"X-Error-Message": message, **(extra or {})}
            if code:
                headers["X-Error-Code"] = code
            self._send(status, json.dumps({"error": message}).encode(), headers, head=head)

        def _authorized(self) -> bool:
            return self.headers.get("Authorization") == f"Bearer {TOKEN}"

        def _repo(self, repo_id: str, head: bool = False) -> Repo | None:
            repo = hub.repos.get(repo_id)
            if repo is None or (repo.private and not self._authorized()):
                self._error(401 if repo is not None else 404, "RepoNotFound", "Repository not found", head=head)
                return None
            return repo

        def _route(self, method: str) -> None:
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            hub.requests.append((method, url.path))
            query = parse_qs(url.query)
            try:
                self._dispatch(method, parts, query)
            except Exception as exc:  # a bug in the stand-in: make it visible to the test
                self._error(500, None, f"stand-in error: {type(exc).__name__}: {exc}")
                raise

        def do_GET(self):
            self._route("GET")

        def do_HEAD(self):
            self._route("HEAD")

        def do_POST(self):
            self._route("POST")

        def do_PUT(self):
            self._route("PUT")

        # -- routes ---------------------------------------------------------------------------
        def _dispatch(self, method: str, parts: list[str], query: dict) -> None:
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                repo_id, rest = "/".join(parts[2:4]), parts[4:]
                if method == "GET" and not rest:
                    return self._info(repo_id, "main")
                if method == "GET" and rest[0] == "revision":
                    return self._info(repo_id, "/".join(rest[1:]))
                if method == "GET" and rest[0] == "tree":
                    return self._tree(repo_id, rest[1])
                if method == "POST" and rest[0] == "preupload":
                    return self._preupload(repo_id, rest[1])
                if method == "POST" and rest[0] == "commit":
                    return self._commit(repo_id, rest[1])
                if method == "POST" and rest[0] == "branch":
                    return self._branch(repo_id, rest[1])
            if method == "POST" and parts == ["api", "repos", "create"]:
                return self._create()
            if method == "POST" and parts == ["api", "validate-yaml"]:
                return self._validate_yaml()
            if method == "POST" and len(parts) == 6 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"]:
                return self._lfs_batch(f"{parts[0]}/{parts[1][:-4]}")
            if method == "PUT" and len(parts) == 2 and parts[0] == "lfs-upload":
                return self._lfs_put(parts[1])
            if method in ("GET", "HEAD") and len(parts) >= 5 and parts[2] == "resolve":
                return self._resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]), head=method == "HEAD")
            self._error(404, None, f"stand-in: no route for {method} {self.path}")

        def _info(self, repo_id: str, revision: str) -> None:
            repo = self._repo(repo_id)
            if repo is None:
                return
            commit = repo.resolve(revision)
            if commit is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            tree = repo.commits[commit]
            self._json(200, {"id": repo_id, "modelId": repo_id, "sha": commit, "private": repo.private,
                             "siblings": [{"rfilename": p} for p in sorted(tree)], "tags": []})

        def _tree(self, repo_id: str, revision: str) -> None:
            repo = self._repo(repo_id)
            if repo is None:
                return
            commit = repo.resolve(revision)
            if commit is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            listing = []
            for path, (data, is_lfs) in sorted(repo.commits[commit].items()):
                entry = {"type": "file", "path": path, "size": len(data)}
                if is_lfs:
                    pointer = lfs_pointer(data)
                    entry["oid"] = git_sha1(pointer)
                    entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": len(pointer)}
                else:
                    entry["oid"] = git_sha1(data)
                listing.append(entry)
            self._json(200, listing)

        def _resolve(self, repo_id: str, revision: str, path: str, head: bool) -> None:
            repo = self._repo(repo_id, head=head)
            if repo is None:
                return
            commit = repo.resolve(revision)
            if commit is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head=head)
            tree = repo.commits[commit]
            if path not in tree:
                return self._error(404, "EntryNotFound", f"{path} does not exist", head=head,
                                   extra={"X-Repo-Commit": commit})
            data, is_lfs = tree[path]
            headers = {"X-Repo-Commit": commit, "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
            if is_lfs:
                sha = hashlib.sha256(data).hexdigest()
                headers.update({"ETag": f'"{sha}"', "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data))})
            else:
                headers["ETag"] = f'"{git_sha1(data)}"'
            if (repo_id, path) in hub.corrupt and data:
                data = bytes([data[0] ^ 0xFF]) + data[1:]  # same size: only a hash check notices
            self._send(200, data, headers, head=head)

        def _create(self) -> None:
            if not self._authorized():
                return self._error(401, None, "Invalid credentials in Authorization header")
            payload = json.loads(self._body())
            repo_id = f"{payload.get('organization') or 'user'}/{payload['name']}"
            if repo_id in hub.repos:  # the Hub answers 409 with the repo's url (create_repo(exist_ok=True) reads it)
                return self._json(409, {"error": "You already created this model repo", "url": f"{hub.url}/{repo_id}"})
            hub.create(repo_id, private=payload.get("visibility") == "private" or bool(payload.get("private")))
            self._json(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})

        def _branch(self, repo_id: str, branch: str) -> None:
            self._body()
            if not self._authorized():
                return self._error(401, None, "Invalid credentials in Authorization header")
            repo = self._repo(repo_id)
            if repo is None:
                return
            if branch in repo.branches:
                return self._error(409, None, f"Reference already exists: refs/heads/{branch}")
            repo.branches[branch] = repo.branches["main"]
            self._json(200, {})

        def _validate_yaml(self) -> None:
            content = json.loads(self._body())["content"]
            errors = []
            if content.startswith("---"):
                front = content.split("---", 2)[1]
                try:
                    meta = yaml.safe_load(front)
                    if not isinstance(meta, dict):
                        errors.append({"message": "metadata is not a mapping"})
                except yaml.YAMLError as exc:
                    errors.append({"message": f"invalid YAML: {exc}"})
            if errors:
                return self._json(400, {"errors": errors, "warnings": []})
            self._json(200, {"errors": [], "warnings": []})

        def _writable(self, repo_id: str, revision: str) -> tuple[Repo, str] | None:
            if not self._authorized():
                self._error(401, None, "Invalid credentials in Authorization header")
                return None
            repo = self._repo(repo_id)
            if repo is None:
                return None
            if revision not in repo.branches:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                return None
            return repo, repo.branches[revision]

        def _preupload(self, repo_id: str, revision: str) -> None:
            payload = json.loads(self._body())
            found = self._writable(repo_id, revision)
            if found is None:
                return
            repo, head = found
            files = []
            for f in payload["files"]:
                lfs = f["path"].endswith(LFS_SUFFIXES)
                current = repo.commits[head].get(f["path"])
                oid = None
                if current is not None:
                    oid = hashlib.sha256(current[0]).hexdigest() if current[1] else git_sha1(current[0])
                files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
            self._json(200, {"files": files})

        def _lfs_batch(self, repo_id: str) -> None:
            payload = json.loads(self._body())
            if not self._authorized():
                return self._error(401, None, "Invalid credentials in Authorization header")
            if self._repo(repo_id) is None:
                return
            objects = []
            for obj in payload["objects"]:
                entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
                if obj["oid"] not in hub.lfs:
                    entry["actions"] = {"upload": {"href": f"{hub.url}/lfs-upload/{obj['oid']}"}}
                objects.append(entry)
            self._json(200, {"transfer": "basic", "objects": objects})

        def _lfs_put(self, oid: str) -> None:
            data = self._body()
            if hashlib.sha256(data).hexdigest() != oid:
                return self._error(400, None, "sha256 of the upload does not match its oid")
            hub.lfs[oid] = data
            self._send(200)

        def _commit(self, repo_id: str, revision: str) -> None:
            lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
            found = self._writable(repo_id, revision)
            if found is None:
                return
            repo, head = found
            tree = dict(repo.commits[head])
            for item in lines:
                key, value = item["key"], item["value"]
                if key == "file":
                    tree[value["path"]] = (base64.b64decode(value["content"]), False)
                elif key == "lfsFile":
                    if value["oid"] not in hub.lfs:
                        return self._error(422, None, f"LFS object {value['oid']} was not uploaded")
                    tree[value["path"]] = (hub.lfs[value["oid"]], True)
                elif key == "deletedFile":
                    tree.pop(value["path"], None)
            with hub._lock:
                commit = hub._commit(repo, tree, head)
                repo.branches[revision] = commit
            self._json(200, {"success": True, "commitOid": commit, "commitUrl": f"{hub.url}/{repo_id}/commit/{commit}",
                             "pullRequestUrl": None})

    return Handler


# -- pytest fixture ----------------------------------------------------------------------------------


@pytest.fixture
def hub_server(monkeypatch, tmp_path):
    """A running stand-in, with huggingface_hub pointed at it and a fresh cache (HF_HOME) in tmp_path.

    huggingface_hub reads its environment once, at import: the fixture sets the variables (for
    subprocesses) and mirrors them into ``huggingface_hub.constants`` (for this process).
    """
    from huggingface_hub import constants

    server = HubStandIn().start()
    home = tmp_path / "hf-stand-in-home"
    env = {"HF_ENDPOINT": server.url, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(home), "HF_HUB_OFFLINE": "0",
           "HF_TOKEN": TOKEN, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
           "NO_PROXY": "127.0.0.1,localhost"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(key, raising=False)
    for name, value in {
        "ENDPOINT": server.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": server.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_OFFLINE": False,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
    }.items():
        if hasattr(constants, name):
            monkeypatch.setattr(constants, name, value)
    yield server
    server.stop()


def go_offline(monkeypatch) -> None:
    """HF_HUB_OFFLINE=1 for huggingface_hub (its constant) and for dse (the variable)."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
