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
- 429s, 5xx and dropped connections are retried with exponential backoff (the Retry-After header when given);
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
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as `python pipelines/publish.py`: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from pipelines.manifest import MANIFEST_NAME, read_manifest, sha256_file

REPO_TYPE = "dataset"
MAX_FILES_PER_COMMIT = 100
MAX_BYTES_PER_COMMIT = 8 << 30
RETRY_STATUS = {429, 500, 502, 503, 504}
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


def is_retryable(error: BaseException) -> bool:
    """429/5xx answers and broken connections, also when wrapped (huggingface_hub wraps LFS upload errors)."""
    seen = error
    while seen is not None:
        if isinstance(seen, HfHubHTTPError) and seen.response is not None:
            return seen.response.status_code in RETRY_STATUS
        if is_transport_error(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def is_transport_error(error: BaseException) -> bool:
    """A broken or timed-out connection: httpx's TransportError (huggingface_hub 1.x) or httpx2's (2.x)."""
    return isinstance(error, (ConnectionError, TimeoutError)) or any(
        cls.__name__ == "TransportError" and cls.__module__.split(".")[0] in ("httpx", "httpx2") for cls in type(error).__mro__
    )


def describe(error: BaseException) -> str:
    """The error in one line: status and server message; huggingface_hub's messages carry no token."""
    status = getattr(getattr(error, "response", None), "status_code", None)
    text = " ".join(str(error).split())[:500] or type(error).__name__
    return f"{type(error).__name__}" + (f" {status}" if status else "") + f": {text}"


class Publisher:
    def __init__(self, api: HfApi, repo_id: str, revision: str = "main", retries: int = 8, backoff: float = 2.0,
                 sleep: Callable[[float], None] = time.sleep, log: Callable[[str], None] = print):  # fmt: skip
        self.api = api
        self.repo_id = repo_id
        self.revision = revision
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self.log = log

    def call(self, what: str, fn: Callable):
        """fn() with retries on 429, 5xx and dropped connections; other errors stop the push."""
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except Exception as e:
                if not is_retryable(e) or attempt == self.retries:
                    raise PublishError(f"{what} failed on {self.repo_id}: {describe(e)}") from None
                self.wait(what, e, attempt)

    def wait(self, what: str, error: BaseException, attempt: int) -> None:
        response = getattr(error, "response", None)
        after = response.headers.get("Retry-After") if response is not None else None
        delay = float(after) if after and after.replace(".", "", 1).isdigit() else self.backoff * 2**attempt
        delay = min(delay, 60.0)
        self.log(f"{what}: {describe(error)}; retrying in {delay:.1f} s ({attempt + 1}/{self.retries})")
        self.sleep(delay)

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

    def upload(self, files: dict[str, LocalFile], version: str) -> int:
        """Commit what the branch lacks, a batch at a time, until it holds `files`; returns the commits made.
        Each round starts from what the branch holds now, so a retry never sends what already landed."""
        commits, failures, stalled, left = 0, 0, 0, None
        while True:
            try:
                to_send, to_delete = self.differences(files, self.tree(self.revision))
                if not to_send and not to_delete:
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
                                       revision=self.revision, repo_type=REPO_TYPE)  # fmt: skip
                commits, failures, left = commits + 1, 0, pending  # a stall counts only commits that went through
            except PublishError:
                raise
            except Exception as e:
                if not is_retryable(e) or failures == self.retries:
                    raise PublishError(f"upload to {self.repo_id}@{self.revision} failed: {describe(e)}; "
                                       "nothing was tagged, and a rerun resumes where this one stopped") from None  # fmt: skip
                self.wait("upload", e, failures)
                failures, left = failures + 1, None

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
            api: HfApi | None = None, retries: int = 8, backoff: float = 2.0, log: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Publish the version in `folder` to the dataset `repo_id`; returns {"version", "commit", "commits", "sent"}."""
    folder = Path(folder)
    manifest, files = version_files(folder)
    version = manifest["version"]
    hub = Publisher(api or HfApi(), repo_id, revision, retries, backoff, log=log)

    def refs_or_none():
        try:
            return hub.refs()
        except RepositoryNotFoundError:
            return None

    refs = hub.call("reading the repository's refs", refs_or_none)

    tagged = next((t for t in refs.tags if t.name == version), None) if refs else None
    if tagged is not None:
        problems = hub.verify(files, tagged.target_commit)
        if problems:
            raise PublishError(f"{repo_id} already has a tag {version} on commit {tagged.target_commit} with other content "
                               f"({problems[0]}{', ...' if len(problems) > 1 else ''}); a published version is never changed")  # fmt: skip
        log(f"{repo_id}@{version} is already published with these files (commit {tagged.target_commit}): nothing to do.")
        return {"version": version, "commit": tagged.target_commit, "commits": 0, "sent": []}

    if dry_run:
        branch = next((b for b in refs.branches if b.name == revision), None) if refs else None
        tree = hub.call("listing the files", lambda: hub.tree(revision)) if branch else {}
        to_send, to_delete = hub.differences(files, tree)
        state = "does not exist yet" if refs is None else (f"has no branch {revision}" if branch is None else f"branch {revision}")
        log(f"dry run: {repo_id} ({state}); {len(to_send)} of {len(files)} files to send, {len(to_delete)} to delete, then tag {version}")
        for f in to_send:
            log(f"  send   {f.path}  {f.size} bytes  sha256 {f.sha256}")
        for path in to_delete:
            log(f"  delete {path}")
        return {"version": version, "commit": None, "commits": 0, "sent": [f.path for f in to_send]}

    hub.call("creating the repository", lambda: hub.api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True))
    if revision != "main":
        hub.call("creating the branch", lambda: hub.api.create_branch(repo_id, branch=revision, repo_type=REPO_TYPE, exist_ok=True))
    before = {path for path, f in hub.call("listing the files", lambda: hub.tree(revision)).items() if path in files and same_file(files[path], f)}
    commits = 0
    for _ in range(3):  # a verification that fails sends what is wrong again, then checks again
        commits += hub.upload(files, version)
        branch = next(b for b in hub.call("reading the repository's refs", hub.refs).branches if b.name == revision)
        problems = hub.verify(files, branch.target_commit)
        if not problems:
            break
        log(f"verification of commit {branch.target_commit} failed: {'; '.join(problems[:5])}; sending again")
    else:
        raise PublishError(f"{repo_id}@{revision}: the files on the Hub do not match the version after 3 tries "
                           f"({'; '.join(problems[:5])}); no tag was created")  # fmt: skip
    commit = branch.target_commit

    def tag():
        try:
            hub.api.create_tag(repo_id, tag=version, revision=commit, tag_message=f"{manifest['name']} {version} {manifest['content_hash']}",
                               repo_type=REPO_TYPE)  # fmt: skip
        except HfHubHTTPError as e:  # a retried request whose first try landed: fine if it names our commit
            if e.response is None or e.response.status_code != 409:
                raise
            existing = next((t for t in hub.refs().tags if t.name == version), None)
            if existing is None or existing.target_commit != commit:
                raise PublishError(f"{repo_id}: tag {version} was created meanwhile on another commit") from None

    hub.call("creating the tag", tag)
    sent = sorted(set(files) - before)
    log(f"published {repo_id}@{version}: commit {commit}, {len(files)} files verified, {len(sent)} sent in {commits} commits")
    return {"version": version, "commit": commit, "commits": commits, "sent": sent}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a finished version folder, e.g. out/udhr-cross-lingual/v1.0.0")
    parser.add_argument("--repo-id", required=True, help="the Hub dataset, org/name (created if needed)")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--revision", default="main", help="branch to commit to (created if needed)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be sent and deleted; change nothing")
    args = parser.parse_args(argv)
    try:
        publish(args.folder, args.repo_id, private=args.private, revision=args.revision, dry_run=args.dry_run)
    except (PublishError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
