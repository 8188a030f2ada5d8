"""Models on the Hugging Face Hub: downloads through its cache, hashes, uploads.

Everything that touches the Hub goes through ``huggingface_hub`` and its cache
(``HF_HOME``, ``HF_HUB_OFFLINE``, ``HF_TOKEN``, ``HF_ENDPOINT``). Downloads are checked
against the registry's sha256 or the Hub's own file hash; a mismatch is evicted from
the cache, fetched once more, and refused if it still does not match. A dse model repo
holds :data:`REPO_FILES` (see :mod:`dse_core.models.format`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import socket
import tempfile
import warnings
from pathlib import Path

from ..errors import DseError, DseWarning
from .card import write_model_card
from .format import CARD_FILE, REPO_FILES, is_pretrained_dir, read_header

_WEIGHT_SUFFIXES = {".pkl", ".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".npy", ".npz"}
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()



def resolve(path_or_repo_id: str | Path, revision: str | None = None) -> Path:
    """A local folder for a path, or the cached snapshot of a Hub repo (``owner/name[@rev]``)."""
    path = Path(path_or_repo_id)
    if path.exists():
        return path
    text = str(path_or_repo_id)
    if not is_repo_id(text):
        raise DseError(f"{text}: no such file or folder",
                       hint="registry ids (`dse models`) are accepted by load_generator / load_encoder and --generator / --encoder")
    repo_id, rev = split_revision(text)
    return download(repo_id, revision or rev)


def split_revision(spec: str) -> tuple[str, str | None]:
    """``owner/name@rev`` -> (``owner/name``, ``rev``); no ``@``: revision None."""
    name, _, rev = spec.partition("@")
    return name, rev or None


def is_repo_id(text: str) -> bool:
    """``owner/name[@rev]``, unless it names a weights file (``models/ffhq.pkl``: a missing local path)."""
    if not _REPO_ID.match(text):
        return False
    return Path(split_revision(text)[0]).suffix.lower() not in _WEIGHT_SUFFIXES


# -- Hub I/O through huggingface_hub -------------------------------------------------------------

def offline() -> bool:
    """``HF_HUB_OFFLINE``, read now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    return constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def unreachable() -> str | None:
    """Why the Hub cannot be reached at all, found at once (the endpoint's name does not resolve: no network),
    instead of huggingface_hub's five retries; None when it may be reachable."""
    from huggingface_hub import constants

    return _unresolvable(constants.ENDPOINT)


@functools.lru_cache(maxsize=4)  # one lookup per endpoint and process
def _unresolvable(endpoint: str) -> str | None:
    from urllib.parse import urlparse
    from urllib.request import getproxies, proxy_bypass

    url = urlparse(endpoint)
    if not url.hostname:
        return None
    if url.scheme in getproxies() or "all" in getproxies():
        if not proxy_bypass(url.hostname):
            return None  # behind a proxy the name is resolved there, not here
    try:
        socket.getaddrinfo(url.hostname, None)
    except socket.gaierror as exc:
        return f"{url.hostname} cannot be resolved ({exc.strerror or exc}): no network?"
    except (OSError, UnicodeError):
        return None
    return None


def _local_only() -> bool:
    """Read the cache only: offline mode, or a Hub that cannot be reached."""
    return offline() or unreachable() is not None


def pull_command(spec: str, revision: str | None = None) -> str:
    return f"dse pull {spec}" + (f" --revision {revision}" if revision else "")


@contextlib.contextmanager
def _hub_errors(repo_id: str, revision: str | None, filename: str | None = None, pull_hint: str | None = None):
    """Translate huggingface_hub's exceptions into one :class:`DseError` naming repo, revision and file."""
    from huggingface_hub.errors import (HFValidationError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError)

    where = f"{repo_id}@{revision or 'main'}" + (f" ({filename})" if filename else "")
    try:
        yield
    except HFValidationError as exc:  # "a/b/c", "bad..name/x", "alice/g@v1" given as a repo id
        raise DseError(f"{repo_id!r} is not a valid Hub repo id ({exc})",
                       hint="Hub repos are owner/name (letters, digits, - _ .); give a revision with --revision") from None
    except LocalEntryNotFoundError:
        raise DseError(
            f"{where} is not in the local Hugging Face cache and the Hub cannot be reached"
            + (" (HF_HUB_OFFLINE is set)" if offline() else f" ({why})" if (why := unreachable()) else ""),
            hint=f"on a connected machine run `{pull_hint or pull_command(repo_id, revision)}` and copy the cache "
                 f"({_cache_dir()}) here, or point HF_HOME at a copy of it",
        ) from None
    except RevisionNotFoundError:
        raise DseError(f"{where}: no such revision (branch, tag or commit) in {repo_id}") from None
    except RemoteEntryNotFoundError:
        raise DseError(f"{where}: no such file in the repository at that revision") from None
    except RepositoryNotFoundError:
        raise DseError(f"{where}: no such repository on the Hub (or it is private: set HF_TOKEN)") from None
    except HfHubHTTPError as exc:
        raise DseError(f"{where}: Hub request failed: {exc}") from None
    except OSError as exc:  # huggingface_hub's size consistency check, disk full, ...
        raise DseError(f"{where}: download failed: {exc}") from None


def _cache_dir() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def download(repo_id: str, revision: str | None = None, pull_hint: str | None = None) -> Path:
    """Fetch (or find in the cache) a dse model repo; every file is checked against the Hub's own hash.

    Offline misses name the repo, the revision and the command to run on a connected machine.
    """
    from huggingface_hub import snapshot_download

    def fetch() -> Path:
        with _hub_errors(repo_id, revision, pull_hint=pull_hint):
            return Path(snapshot_download(repo_id, revision=revision, allow_patterns=REPO_FILES,
                                          local_files_only=_local_only()))

    folder = fetch()
    bad = [p for p in sorted(folder.iterdir()) if p.is_file() and hash_mismatch(p) is not None]
    if not bad:
        return folder
    for path in bad:
        _evict(path)
    if _local_only():
        raise ChecksumError(f"{repo_id}@{revision or 'main'}: the cached {', '.join(p.name for p in bad)} "
                            "did not match the Hub's hash and was removed from the cache",
                            hint=f"on a connected machine run `{pull_hint or pull_command(repo_id, revision)}`")
    folder = fetch()  # re-fetch what was evicted
    for path in bad:
        _refuse_if_corrupt(folder / path.name, None, f"{repo_id}@{revision or 'main'} ({path.name})")
    return folder


def fetch_file(repo_id: str, filename: str, revision: str | None = None, sha256: str | None = None,
               pull_hint: str | None = None) -> Path:
    """One file of a Hub repo, through the cache, checked against ``sha256`` (else the Hub's own hash).

    A file that does not match is removed from the cache and fetched once more; a second mismatch is refused.
    """
    from huggingface_hub import hf_hub_download

    def fetch() -> Path:
        with _hub_errors(repo_id, revision, filename, pull_hint=pull_hint):
            return Path(hf_hub_download(repo_id, filename, revision=revision, local_files_only=_local_only()))

    path = fetch()
    if hash_mismatch(path, sha256) is None:
        return path
    _evict(path)
    where = f"{repo_id}@{revision or 'main'} ({filename})"
    if _local_only():
        raise ChecksumError(f"{where}: the cached copy does not match its sha256 and was removed from the cache",
                            hint=f"on a connected machine run `{pull_hint or pull_command(repo_id, revision)}`")
    warnings.warn(f"{where}: does not hash to {_mismatch_text(sha256)}; removed from the cache, fetching it again",
                  DseWarning, stacklevel=2)
    path = fetch()
    _refuse_if_corrupt(path, sha256, where)
    return path


class ChecksumError(DseError):
    """A downloaded (or cached) file whose bytes do not hash to what the registry or the Hub says."""


def expected_hash(path: Path) -> str | None:
    """The Hub's hash of a cached file: its blob's name (sha256 for LFS files, git sha1 for the rest)."""
    if not path.is_symlink():
        return None
    name = Path(os.path.realpath(path)).name
    return name if re.fullmatch(r"[0-9a-f]{64}|[0-9a-f]{40}", name) else None


def git_blob_sha1(path: Path) -> str:
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


_verified: dict[tuple[str, int, int], str] = {}  # (real path, size, mtime) -> sha256, for this process


def cached_sha256(path: str | Path) -> str:
    """``sha256_of`` with a per-process memo (a model is often loaded more than once)."""
    real = os.path.realpath(path)
    stat = os.stat(real)
    key = (real, stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        _verified[key] = sha256_of(real)
    return _verified[key]


def hash_mismatch(path: Path, sha256: str | None = None) -> tuple[str, str] | None:
    """(expected, actual) when ``path`` does not hash to ``sha256`` (or, without one, to its Hub hash)."""
    expected = sha256 or expected_hash(path)
    if expected is None:
        return None
    actual = git_blob_sha1(path) if len(expected) == 40 else cached_sha256(path)
    return None if actual == expected else (expected, actual)


def _mismatch_text(sha256: str | None) -> str:
    return f"the pinned sha256 {sha256[:12]}..." if sha256 else "the Hub's hash of it"


def _refuse_if_corrupt(path: Path, sha256: str | None, where: str) -> None:
    bad = hash_mismatch(path, sha256)
    if bad is not None:
        _evict(path)
        raise ChecksumError(
            f"{where}: the download hashes to {bad[1]}, expected {bad[0]}"
            f" ({'pinned in the registry' if sha256 else 'the Hub file metadata'}); refused and removed from the cache",
            hint="the file on the Hub differs from the one pinned; if the Hub copy changed on purpose, "
                 "update the registry entry's sha256" if sha256 else "try again later; the transfer was corrupted",
        )


def _evict(path: Path) -> None:
    """Remove a cached file: the snapshot link and the blob it points to."""
    real = Path(os.path.realpath(path))
    Path(path).unlink(missing_ok=True)
    if real != Path(path):
        real.unlink(missing_ok=True)
    _verified.clear()


def commit_of(folder: Path) -> str | None:
    """The commit a cached snapshot folder (``.../snapshots/<commit>/``) holds."""
    name = Path(folder).name
    return name if re.fullmatch(r"[0-9a-f]{40}", name) and Path(folder).parent.name == "snapshots" else None


def push_folder(folder: str | Path, repo_id: str, private: bool = False, revision: str | None = None,
                token: str | None = None, commit_message: str | None = None, license: str | None = None):
    """Upload a saved model (``config.json`` + ``model.safetensors`` + card, grid, metrics) to the Hub.

    The card is (re)written for ``repo_id`` in a staging copy; the folder itself is not modified.
    Returns huggingface_hub's ``CommitInfo`` (``.oid`` is the new commit).
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not is_pretrained_dir(folder):
        raise DseError(f"{folder}: not a saved dse model (config.json + model.safetensors)")
    from huggingface_hub.utils import validate_repo_id

    with _hub_errors(repo_id, revision):
        validate_repo_id(repo_id)  # before anything else: a typo is not a network problem
    if offline() or unreachable():
        why = "HF_HUB_OFFLINE is set" if offline() else unreachable()
        raise DseError(f"cannot push to {repo_id}: {why}", hint="push from a connected machine (HF_HUB_OFFLINE unset)")
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="dse-push-") as tmp:
        stage = Path(tmp)
        for name in REPO_FILES:
            if (folder / name).is_file() and name != CARD_FILE:
                shutil.copy2(folder / name, stage / name)
        write_model_card(stage, repo_id=repo_id, license=license)
        with _hub_errors(repo_id, revision):
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision and revision != "main":
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            kind = read_header(stage).get("kind", "model")
            return api.upload_folder(repo_id=repo_id, folder_path=stage, revision=revision,
                                     commit_message=commit_message or f"Upload dse {kind}")
