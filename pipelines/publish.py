"""Publish a finished version folder to the Hugging Face Hub: a dataset revision, verified, then tagged.

    python pipelines/publish.py out/udhr-cross-lingual/v1.0.0 --repo-id my-org/bayling-data
    python pipelines/publish.py out/udhr-cross-lingual/v1.0.0 --repo-id my-org/bayling-data --dry-run
    python pipelines/publish.py out/udhr-cross-lingual/v1.0.0 --repo-id my-org/bayling-data --private --revision staging

What is sent: every file the manifest lists (data/, removed/, the card and its chart, LICENSE, recipe.yaml) and
manifest.json; local logs stay local. The branch ends up holding exactly these files (and the Hub's
.gitattributes): files of an earlier version that this one does not have are deleted in the same commits.

How it stays safe:
- the upload is a loop: list what the branch holds, commit the next batch of what differs (at most
  MAX_FILES_PER_COMMIT files and MAX_BYTES_PER_COMMIT bytes: the Hub's per-commit limits are far above), repeat.
  A file the branch already holds with the same hash is never sent again, so an interrupted push, rerun, resumes
  where it stopped, and a commit whose reply was lost is not made twice;
- refused, reset and dropped connections, 408/429/5xx answers are retried with exponential backoff (jittered by
  a seeded RNG, or the Retry-After header when given) for at most --retry-seconds without progress; a host name
  that does not resolve, or any other error, stops the push at once. The commit names the commit it was made on
  (parentCommit), so a retried commit can never be applied on top of itself;
- then every file of the head commit is checked against the manifest: the LFS sha256 for LFS files, the git
  blob hash for the others; both are computed by the Hub;
- only then is the tag (the version id) created, on that very commit. A push of a version whose tag exists is a
  no-op when the tagged commit holds the same files, and refused when it does not.

The token comes from where huggingface_hub looks (HF_TOKEN, `hf auth login`); it is never printed or stored.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

if __package__ in (None, ""):  # run as `python pipelines/publish.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, set_client_factory
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from huggingface_hub.utils import _http as hf_http

from pipelines import storage
from pipelines.manifest import MANIFEST_NAME, read_manifest, sha256_file

REPO_TYPE = "dataset"
MAX_FILES_PER_COMMIT = 100
MAX_BYTES_PER_COMMIT = 8 << 30
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
RETRY_SECONDS = 300.0  # how long the Hub may fail without any progress before a push gives up
MAX_DELAY = 60.0
# huggingface_hub's client waits forever on a Hub that accepts a connection and never answers (its calls pass
# timeout=None), which no --retry-seconds bound would cover. Each connect and each read or write of a request gets
# this bound instead; it is per socket operation, not per request, so a large LFS upload is not cut short.
HTTP_TIMEOUT_SECONDS = 60.0
CONNECT_TIMEOUT_SECONDS = 10.0
KEEP_REMOTE = {".gitattributes"}  # the Hub's own file, written when the repository is created


class PublishError(Exception):
    """Why a version was not published (never with the token in it)."""


@dataclass(frozen=True)
class LocalFile:
    path: str  # in the repository
    local: Path
    size: int
    sha256: str

    def git_blob_sha1(self) -> str:
        digest = hashlib.sha1(f"blob {self.size}\0".encode())
        with open(self.local, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


def version_files(folder: Path) -> tuple[dict, dict[str, LocalFile]]:
    """The manifest and the files of a finished version, each checked against the manifest's sha256 first: a
    version folder that was changed after the build is not published."""
    manifest = read_manifest(folder)
    if manifest is None:
        raise PublishError(f"{folder} is not a finished build: it has no {MANIFEST_NAME}")
    if not manifest.get("version") or not manifest.get("content_hash"):
        raise PublishError(f"{folder / MANIFEST_NAME}: no version or content_hash (built before versions existed); rebuild it")
    files = {}
    for entry in manifest["files"]:
        local = folder / entry["path"]
        if not local.is_file():
            raise PublishError(f"{local}: listed in the manifest but missing")
        if sha256_file(local) != entry["sha256"]:
            raise PublishError(f"{local}: its sha256 differs from the manifest's; the version folder was changed after the build")
        files[entry["path"]] = LocalFile(entry["path"], local, local.stat().st_size, entry["sha256"])
    path = folder / MANIFEST_NAME
    files[MANIFEST_NAME] = LocalFile(MANIFEST_NAME, path, path.stat().st_size, sha256_file(path))
    return manifest, files


def same_file(local: LocalFile, remote) -> bool:
    """Whether a file of the repository tree (a huggingface_hub RepoFile) has the local content."""
    if remote is None or remote.size != local.size:
        return False
    if remote.lfs is not None:
        return remote.lfs.sha256 == local.sha256
    return remote.blob_id == local.git_blob_sha1()


class HubOutage(Exception):
    """A request the Hub did not answer (refused, reset or dropped connection) or answered with 408/429/5xx."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class HostNotFound(Exception):
    """A host name that does not resolve: a wrong endpoint or no network, not worth retrying."""

    def __init__(self, host: str, reason: str):
        super().__init__(f"cannot resolve host {host!r}: {reason}")
        self.host, self.reason = host, reason


def causes(error: BaseException) -> Iterator[BaseException]:
    """The error and what it wraps (huggingface_hub wraps LFS upload errors in a RuntimeError)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def is_permanent(error: BaseException) -> bool:
    """Connection errors that no retry cures: a name that does not resolve, a certificate that does not verify,
    a URL scheme httpx cannot speak."""
    names = ("UnsupportedProtocol", "LocalProtocolError")
    return isinstance(error, (HostNotFound, socket.gaierror, ssl.SSLCertVerificationError)) or any(
        cls.__name__ in names and is_http_library(cls) for cls in type(error).__mro__
    )


def is_retryable(error: BaseException) -> bool:
    """408/429/5xx answers and broken connections, also when wrapped; never when a permanent error is in the chain."""
    chain = list(causes(error))
    if any(is_permanent(e) for e in chain):
        return False
    for seen in chain:
        if isinstance(seen, HubOutage):
            return True
        if isinstance(seen, HfHubHTTPError) and seen.response is not None:
            return seen.response.status_code in RETRY_STATUS
        if is_transport_error(seen) or is_closed_client(seen):
            return True
    return False


def is_http_library(cls: type) -> bool:
    return cls.__module__.split(".")[0] in ("httpx", "httpx2", "httpcore")


def is_transport_error(error: BaseException) -> bool:
    """A broken or timed-out connection: httpx's TransportError (huggingface_hub 1.x) or httpx2's (2.x), or the
    httpcore error under one (its NetworkError, RemoteProtocolError or TimeoutException)."""
    names = ("TransportError", "NetworkError", "RemoteProtocolError", "TimeoutException")
    return isinstance(error, (ConnectionError, TimeoutError)) or any(
        cls.__name__ in names and is_http_library(cls) for cls in type(error).__mro__
    )


def is_closed_client(error: BaseException) -> bool:
    """huggingface_hub closes its shared client after a connection error, under requests other threads still
    have in flight on it (its LFS uploads run in threads): those fail with this RuntimeError of httpx."""
    return isinstance(error, RuntimeError) and "client has been closed" in str(error)


def unresolved_host(error: BaseException) -> HostNotFound | None:
    """The host whose name did not resolve, and why, where that is what went wrong."""
    for seen in causes(error):
        if isinstance(seen, HostNotFound):
            return seen
        if isinstance(seen, socket.gaierror):
            host = next((request_host(e) for e in causes(error) if request_host(e)), "?")
            return HostNotFound(host, seen.strerror or str(seen))
    return None


def request_host(error: BaseException) -> str | None:
    try:  # httpx errors carry their request; reading it where none was set raises
        return error.request.url.host
    except (AttributeError, RuntimeError):
        return None


def describe(error: BaseException) -> str:
    """The error in one line: status and server message; huggingface_hub's messages carry no token."""
    status = getattr(getattr(error, "response", None), "status_code", None)
    text = " ".join(str(error).split())[:500] or type(error).__name__
    return f"{type(error).__name__}" + (f" {status}" if status else "") + f": {text}"


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.replace(".", "", 1).isdigit() else None


def asked_wait(error: BaseException) -> float | None:
    """The Retry-After of the answer behind the error, if any."""
    for seen in causes(error):
        if isinstance(seen, HubOutage) and seen.retry_after is not None:
            return seen.retry_after
        response = getattr(seen, "response", None)
        if isinstance(response, httpx.Response) and retry_after(response) is not None:
            return retry_after(response)
    return None


class HubClient(httpx.Client):
    """huggingface_hub's shared HTTP client during a publish: the client it would use, with every passing failure
    (no connection, a reset, a 408/429/5xx answer) raised at once as HubOutage and a name that does not resolve
    as HostNotFound. huggingface_hub retries some requests itself (with sleeps of its own, a name that does not
    resolve included), which no bound of ours would cover; this way the Publisher's loop is the only one that
    retries, within --retry-seconds. Neither exception is one huggingface_hub retries."""

    def __init__(self, inner: httpx.Client, timeout: float = HTTP_TIMEOUT_SECONDS):
        super().__init__(timeout=inner.timeout)
        self.inner = inner  # its transport, proxies, certificates, hooks and redirects serve every request
        self.bound = httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_SECONDS)).as_dict()

    def bounded(self, request: httpx.Request) -> None:
        """Give each of the request's timeouts (connect, read, write, pool) at most our bound: a shorter one the
        caller asked for stays, none (wait forever) becomes the bound."""
        asked = request.extensions.get("timeout") or {}
        request.extensions["timeout"] = {key: bound if asked.get(key) is None else min(asked[key], bound)
                                         for key, bound in self.bound.items()}  # fmt: skip

    def send(self, request: httpx.Request, **kwargs) -> httpx.Response:
        self.bounded(request)
        port = f":{request.url.port}" if request.url.port else ""
        where = f"{request.method} {request.url.host}{port}{request.url.path}"  # no query: LFS upload URLs may be signed
        try:
            response = self.inner.send(request, **kwargs)
        except httpx.TransportError as e:
            resolving = next((c for c in causes(e) if isinstance(c, socket.gaierror)), None)
            if resolving is not None:
                raise HostNotFound(request.url.host, resolving.strerror or str(resolving)) from None
            if is_permanent(e):
                raise
            raise HubOutage(f"{where}: {describe(e)}") from e
        if response.status_code in RETRY_STATUS:
            try:
                message = " ".join(response.read().decode(errors="replace").split())[:200]
            except httpx.HTTPError:
                message = ""
            finally:
                response.close()
            raise HubOutage(f"{where}: HTTP {response.status_code} {message}".rstrip(), retry_after(response))
        return response

    def close(self) -> None:
        self.inner.close()
        super().close()


@contextmanager
def hub_client(timeout: float = HTTP_TIMEOUT_SECONDS) -> Iterator[None]:
    """HubClient as huggingface_hub's client (it keeps one per process) while the block runs, then the factory
    that was there before (the library's default, or one a user set for proxies or certificates)."""
    previous = getattr(hf_http, "_GLOBAL_CLIENT_FACTORY", hf_http.default_client_factory)
    set_client_factory(lambda: HubClient(previous(), timeout))
    try:
        yield
    finally:
        set_client_factory(previous)


class RetryBudget:
    """Exponential backoff with jitter (a seeded RNG: the same waits each run) for at most `seconds` of failures
    in a row; each success (progress) starts the count again."""

    def __init__(self, seconds: float = RETRY_SECONDS, backoff: float = 2.0, seed: int | str = 0,
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        if seconds < 0:
            raise ValueError(f"--retry-seconds must be 0 or more, not {seconds}")
        self.seconds, self.backoff, self.clock = seconds, backoff, clock
        self.rng = random.Random(seed)
        self.failing_since: float | None = None
        self.failures = 0

    def succeeded(self) -> None:
        self.failing_since, self.failures = None, 0

    def next_delay(self, error: BaseException) -> float | str:
        """Seconds to wait before the next try, or why there is none (a sentence)."""
        now = self.clock()
        self.failing_since = now if self.failing_since is None else self.failing_since
        left = self.failing_since + self.seconds - now
        self.failures += 1
        asked = asked_wait(error)
        bound = f"--retry-seconds {self.seconds:g}"
        if left <= 0:
            return f"still failing after {now - self.failing_since:.1f} s, the bound of {bound}"
        if asked is not None and asked > left:
            return f"the Hub asks to wait {asked:g} s (Retry-After), more than the {left:.1f} s left of {bound}"
        if asked is not None:
            return asked
        ceiling = min(self.backoff * 2 ** (self.failures - 1), MAX_DELAY)
        return min(ceiling / 2 + self.rng.uniform(0, ceiling / 2), left)  # the last try comes at the bound


class Publisher:
    def __init__(self, api: HfApi, repo_id: str, revision: str = "main", budget: RetryBudget | None = None,
                 sleep: Callable[[float], None] = time.sleep, log: Callable[[str], None] = print):  # fmt: skip
        self.api = api
        self.repo_id = repo_id
        self.revision = revision
        self.budget = budget or RetryBudget(seed=repo_id)
        self.sleep = sleep
        self.log = log

    def call(self, what: str, fn: Callable):
        """fn() with retries on passing failures (see is_retryable) within the budget; other errors stop the push."""
        while True:
            try:
                result = fn()
            except Exception as e:
                self.retry_or_stop(what, e)
            else:
                self.budget.succeeded()
                return result

    def retry_or_stop(self, what: str, error: Exception, retryable: bool | None = None, consequence: str = "") -> None:
        """Wait before the next try, or raise PublishError saying in one line why there is none."""
        unresolved = unresolved_host(error)
        if unresolved is not None:
            raise PublishError(f"{what} failed: cannot resolve the host {unresolved.host!r} ({unresolved.reason}; Hub "
                               f"endpoint {self.endpoint()}): check the endpoint (HF_ENDPOINT) and the network{consequence}") from None  # fmt: skip
        if not (is_retryable(error) if retryable is None else retryable):
            raise PublishError(f"{what} failed on {self.repo_id}: {describe(error)}{consequence}") from None
        delay = self.budget.next_delay(error)
        if isinstance(delay, str):
            raise PublishError(f"{what} failed on {self.repo_id}: {delay}; last error {describe(error)}{consequence}") from None  # fmt: skip
        self.wait(what, error, delay)

    def wait(self, what: str, error: BaseException, delay: float) -> None:
        self.log(f"{what}: {describe(error)}; retrying in {delay:.1f} s (failure {self.budget.failures} in a row)")
        self.sleep(delay)

    def endpoint(self) -> str:
        """The API's endpoint without any user name or password in it."""
        parts = urlsplit(self.api.endpoint)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")

    def tree(self, revision: str) -> dict:
        return {
            entry.path: entry
            for entry in self.api.list_repo_tree(self.repo_id, revision=revision, recursive=True, repo_type=REPO_TYPE)
            if hasattr(entry, "blob_id")  # files, not folders
        }

    def refs(self):
        return self.api.list_repo_refs(self.repo_id, repo_type=REPO_TYPE)

    def differences(self, files: dict[str, LocalFile], tree: dict) -> tuple[list[LocalFile], list[str]]:
        """Files to send and repository files to delete so that the tree holds exactly `files`."""
        last = ("README.md", MANIFEST_NAME)  # the card (configs) and the manifest land with or after the data they describe
        to_send = [f for path, f in sorted(files.items(), key=lambda kv: (kv[0] in last, kv[0])) if not same_file(f, tree.get(path))]
        to_delete = sorted(path for path in tree if path not in files and path not in KEEP_REMOTE)
        return to_send, to_delete

    def head(self) -> str:
        return next(b.target_commit for b in self.refs().branches if b.name == self.revision)

    def upload(self, files: dict[str, LocalFile], version: str) -> int:
        """Commit what the branch lacks, a batch at a time, until it holds `files`; returns the commits made.
        Each round starts from what the branch holds now, so a retry never sends what already landed, and commits
        on the very commit it listed: the Hub refuses it (412) where the branch has moved since, so a commit that
        landed although its answer was lost is never applied twice."""
        commits, stalled, left = 0, 0, None
        consequence = "; nothing was tagged, and a rerun resumes where this one stopped"
        while True:
            try:
                head = self.head()
                to_send, to_delete = self.differences(files, self.tree(head))
                if not to_send and not to_delete:
                    self.budget.succeeded()
                    return commits
                stalled = stalled + 1 if left is not None and len(to_send) + len(to_delete) >= left else 0
                if stalled == 3:  # commits go through but the files do not show up in the tree
                    raise PublishError(f"{self.repo_id}@{self.revision}: after 3 commits, the Hub still lacks "
                                       f"{', '.join(f.path for f in to_send[:3]) or ', '.join(to_delete[:3])}; no tag was created")  # fmt: skip
                pending = len(to_send) + len(to_delete)
                batch = next_batch(to_send)
                operations = [CommitOperationAdd(path_in_repo=f.path, path_or_fileobj=str(f.local)) for f in batch]
                operations += [CommitOperationDelete(path_in_repo=path) for path in to_delete]
                sent = sum(f.size for f in batch)
                self.log(f"commit {commits + 1}: {len(batch)} files ({sent / 1e6:.1f} MB), {len(to_delete)} deletions; "
                         f"{len(to_send) - len(batch)} files left after it")  # fmt: skip
                self.api.create_commit(self.repo_id, operations, commit_message=f"{version}: {len(batch)} files",
                                       revision=self.revision, repo_type=REPO_TYPE, parent_commit=head)  # fmt: skip
                commits, left = commits + 1, pending  # a stall counts only commits that went through
                self.budget.succeeded()
            except PublishError:
                raise
            except Exception as e:
                moved = isinstance(e, HfHubHTTPError) and e.response is not None and e.response.status_code == 412
                self.retry_or_stop(f"upload to {self.repo_id}@{self.revision}", e, retryable=True if moved else None,
                                   consequence=consequence)  # fmt: skip
                left = None

    def verify(self, files: dict[str, LocalFile], commit: str) -> list[str]:
        """What is wrong with the tree of `commit` (empty when it holds exactly `files`)."""
        tree = self.call("listing the files", lambda: self.tree(commit))
        problems = [f"{path}: {'missing' if path not in tree else 'content differs'}" for path, f in sorted(files.items())
                    if not same_file(f, tree.get(path))]  # fmt: skip
        problems += [f"{path}: not in this version" for path in sorted(tree) if path not in files and path not in KEEP_REMOTE]
        return problems


def next_batch(files: list[LocalFile]) -> list[LocalFile]:
    batch, size = [], 0
    for f in files:
        if batch and (len(batch) == MAX_FILES_PER_COMMIT or size + f.size > MAX_BYTES_PER_COMMIT):
            break
        batch.append(f)
        size += f.size
    return batch


def publish(folder: str | os.PathLike, repo_id: str, *, private: bool = False, revision: str = "main", dry_run: bool = False,
            api: HfApi | None = None, retry_seconds: float = RETRY_SECONDS, backoff: float = 2.0,
            log: Callable[[str], None] = print, http_timeout: float = HTTP_TIMEOUT_SECONDS) -> dict:  # fmt: skip
    """Publish the version in `folder` to the dataset `repo_id`; returns {"version", "commit", "commits", "sent"}.
    A stretch of passing failures (see is_retryable) longer than `retry_seconds` stops it; a request the Hub does
    not answer within `http_timeout` seconds is such a failure."""
    if storage.is_remote(folder):  # published from this machine's copy, checked against the manifest as any folder
        manifest = read_manifest(folder)
        if manifest is None:
            raise PublishError(f"{storage.shown(folder)} is not a finished build: it has no {MANIFEST_NAME}")
        folder = storage.local_version(str(folder), [entry["path"] for entry in manifest.get("files", [])] + [MANIFEST_NAME])
    folder = Path(folder)
    manifest, files = version_files(folder)
    version = manifest["version"]
    budget = RetryBudget(retry_seconds, backoff, seed=f"{repo_id}@{version}")
    with hub_client(http_timeout):
        return push(Publisher(api or HfApi(), repo_id, revision, budget, log=log), manifest, files, private, dry_run)


def push(hub: Publisher, manifest: dict, files: dict[str, LocalFile], private: bool, dry_run: bool) -> dict:
    repo_id, revision, version = hub.repo_id, hub.revision, manifest["version"]

    def refs_or_none():
        try:
            return hub.refs()
        except RepositoryNotFoundError:
            return None

    refs = hub.call("reading the repository's refs", refs_or_none)
    tagged = next((t for t in refs.tags if t.name == version), None) if refs else None
    if tagged is not None:
        return already_published(hub, files, version, tagged.target_commit)
    if dry_run:
        return list_what_would_change(hub, files, version, refs)

    hub.call("creating the repository", lambda: hub.api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True))
    if revision != "main":
        hub.call("creating the branch", lambda: hub.api.create_branch(repo_id, branch=revision, repo_type=REPO_TYPE, exist_ok=True))
    before = {path for path, f in hub.call("listing the files", lambda: hub.tree(revision)).items() if path in files and same_file(files[path], f)}
    commit, commits = send_and_verify(hub, files, version)
    hub.call("creating the tag", lambda: create_tag(hub, manifest, commit))
    sent = sorted(set(files) - before)
    hub.log(f"published {repo_id}@{version}: commit {commit}, {len(files)} files verified, {len(sent)} sent in {commits} commits")
    return {"version": version, "commit": commit, "commits": commits, "sent": sent}


def already_published(hub: Publisher, files: dict[str, LocalFile], version: str, commit: str) -> dict:
    """A tag of this version exists: a no-op when its commit holds these files, refused when it does not."""
    problems = hub.verify(files, commit)
    if problems:
        raise PublishError(f"{hub.repo_id} already has a tag {version} on commit {commit} with other content "
                           f"({problems[0]}{', ...' if len(problems) > 1 else ''}); a published version is never changed")  # fmt: skip
    hub.log(f"{hub.repo_id}@{version} is already published with these files (commit {commit}): nothing to do.")
    return {"version": version, "commit": commit, "commits": 0, "sent": []}


def list_what_would_change(hub: Publisher, files: dict[str, LocalFile], version: str, refs) -> dict:
    revision = hub.revision
    branch = next((b for b in refs.branches if b.name == revision), None) if refs else None
    tree = hub.call("listing the files", lambda: hub.tree(revision)) if branch else {}
    to_send, to_delete = hub.differences(files, tree)
    state = "does not exist yet" if refs is None else (f"has no branch {revision}" if branch is None else f"branch {revision}")
    hub.log(f"dry run: {hub.repo_id} ({state}); {len(to_send)} of {len(files)} files to send, {len(to_delete)} to delete, then tag {version}")
    for f in to_send:
        hub.log(f"  send   {f.path}  {f.size} bytes  sha256 {f.sha256}")
    for path in to_delete:
        hub.log(f"  delete {path}")
    return {"version": version, "commit": None, "commits": 0, "sent": [f.path for f in to_send]}


def send_and_verify(hub: Publisher, files: dict[str, LocalFile], version: str) -> tuple[str, int]:
    """Upload until the branch's head commit holds exactly `files`, checked with the Hub's hashes; returns that
    commit and the commits made. A verification that fails sends what is wrong again, then checks again."""
    commits = 0
    for _ in range(3):
        commits += hub.upload(files, version)
        commit = hub.call("reading the repository's refs", hub.head)
        problems = hub.verify(files, commit)
        if not problems:
            return commit, commits
        hub.log(f"verification of commit {commit} failed: {'; '.join(problems[:5])}; sending again")
    raise PublishError(f"{hub.repo_id}@{hub.revision}: the files on the Hub do not match the version after 3 tries "
                       f"({'; '.join(problems[:5])}); no tag was created")  # fmt: skip


def create_tag(hub: Publisher, manifest: dict, commit: str) -> None:
    version = manifest["version"]
    try:
        hub.api.create_tag(hub.repo_id, tag=version, revision=commit, tag_message=f"{manifest['name']} {version} {manifest['content_hash']}",
                           repo_type=REPO_TYPE)  # fmt: skip
    except HfHubHTTPError as e:  # a retried request whose first try landed: fine if it names our commit
        if e.response is None or e.response.status_code != 409:
            raise
        existing = next((t for t in hub.refs().tags if t.name == version), None)
        if existing is None or existing.target_commit != commit:
            raise PublishError(f"{hub.repo_id}: tag {version} was created meanwhile on another commit") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=storage.location,
                        help="a finished version folder, e.g. out/udhr-cross-lingual/v1.0.0, or its URL (s3://...)")
    parser.add_argument("--repo-id", required=True, help="the Hub dataset, org/name (created if needed)")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--revision", default="main", help="branch to commit to (created if needed)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be sent and deleted; change nothing")
    parser.add_argument("--retry-seconds", type=float, default=RETRY_SECONDS, metavar="S",
                        help="how long the Hub may keep failing (refused or dropped connections, 408/429/5xx) before "
                             "the push gives up; each request that succeeds starts the count again (default %(default)g)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        publish(args.folder, args.repo_id, private=args.private, revision=args.revision, dry_run=args.dry_run,
                retry_seconds=args.retry_seconds)  # fmt: skip
    except (PublishError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
