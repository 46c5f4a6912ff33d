"""Where a version is built before it is moved into place: `<parent>/.<version>.partial/`.

    .<version>.lock          beside it: held by the one build of this folder (an OS lock, released if it dies)
    .<version>.partial/
        .build_key           written first: the build key this folder was made for
        .work/<build key>/   the stages' intermediate files, datatrove's logs and completion markers
        data/ removed/ ...   what becomes the version

A folder made for another build key (or for none: a build from before the marker, or a renamed folder) is emptied
before any work starts: datatrove skips tasks whose completion markers it finds, and the manifest stage reads every
shard it finds, so leftovers of other arguments would be published as this build's. The same build key resumes.
Before the version is moved into place, it is checked against its manifest: hidden leftovers (temporary files of a
killed run) are removed, and any other file the manifest does not list stops the build.

An output on an object store (`s3://...`, see pipelines/storage.py) is built the same way in a local staging folder,
`<cache>/bayling/staging/<hash of the URL>/.<version>.partial/` (XDG_CACHE_HOME, default ~/.cache), then uploaded
(`pipelines.versions.keep_version`). With `work_on_store` (--work-on-store, for workers that share no folder) the
staging folder is kept on the store beside the version, `.<version>.partial/`, and each machine works in a copy at
/tmp/bayling-work/<hash of the URL>/ that every task syncs (`pipelines.storage.WorkMirror`).

The lock of an output on an object store is an object beside the version, `.<version>.lock`, created with a
conditional PUT (If-None-Match: *, which S3 and moto honour): it is deleted when the build ends, but a build killed
without a chance to clean up leaves it, and the next build names it (remove it once sure no build is running).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

from filelock import FileLock, Timeout

from pipelines import storage
from pipelines.manifest import MANIFEST_NAME

BUILD_KEY_NAME = ".build_key"
DESCRIBED_FOLDERS = ("logs",)  # copied from the work folder: how the version was built, not listed in the manifest


class BuildError(Exception):
    """A problem with the arguments or the output folder, reported without a traceback."""


class Staging:
    """The staging folder of one output, locked for one build (`with Staging(output, key) as staging:`)."""

    def __init__(self, output: Path | str, build_key: str, work_on_store: bool = False):
        self.output = storage.location(output)
        self.build_key = build_key
        self.mirror: storage.WorkMirror | None = None
        if storage.is_remote(self.output):
            partial = f".{storage.name(self.output)}.partial"
            if work_on_store:  # the same local path on every machine: the steps hold absolute paths
                self.path = SHARED_WORK_ROOT / url_key(self.output) / partial
                self.mirror = storage.WorkMirror(self.path, storage.join(storage.parent(self.output), partial), (BUILD_KEY_NAME,))
            else:
                self.path = storage.cache_root() / "staging" / url_key(self.output) / partial
            self._lock = RemoteLock(storage.join(storage.parent(self.output), f".{storage.name(self.output)}.lock"))
        elif work_on_store:
            raise BuildError("--work-on-store keeps the staging folder beside the version on an object store: give an --output or "
                             "--store URL (s3://...)")  # fmt: skip
        else:
            self.path = self.output.with_name(f".{self.output.name}.partial")
            self._lock = FileLock(self.output.with_name(f".{self.output.name}.lock"), blocking=False)
        self.work = self.path / ".work" / build_key

    @property
    def logs(self) -> Path | str:
        """Where datatrove's logs and completion markers go: the work folder's logs/, on the store where it is kept
        there (a task run again on any machine is skipped if it finished)."""
        if self.mirror is None:
            return self.work / "logs"
        return storage.join(self.mirror.remote, ".work", self.build_key, "logs")

    def pull(self) -> None:
        if self.mirror is not None:
            self.mirror.pull()

    def push(self) -> None:
        if self.mirror is not None:
            self.mirror.push()

    def __enter__(self) -> Staging:
        if isinstance(self._lock, RemoteLock):
            self._lock.acquire()
            return self
        self.output.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            raise BuildError(f"another build of {self.output} is running (it holds {self._lock.lock_file}); "
                             "wait for it to finish") from None  # fmt: skip
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()

    def prepare(self) -> None:
        """Empty the folder unless it was made for this build key, then record the key (first, before any work)."""
        marker = self.path / BUILD_KEY_NAME
        self.pull()
        if self.path.exists() and not (marker.is_file() and marker.read_text(encoding="utf-8").strip() == self.build_key):
            shutil.rmtree(self.path)
            if self.mirror is not None:
                self.mirror.remove_remote()
        self.work.mkdir(parents=True, exist_ok=True)
        if not marker.is_file():
            tmp = self.work / f"{BUILD_KEY_NAME}.tmp"
            tmp.write_text(self.build_key + "\n", encoding="utf-8")
            os.replace(tmp, marker)
        self.push()

    def seal(self, manifest: dict) -> None:
        """Leave in the folder only what the version holds: the manifest's files, the manifest and the logs. Hidden
        files are leftovers of a killed run's temporary names and are removed (the work folder and the key marker
        with them); a file that is neither listed nor hidden, or a listed file that is missing, is an error."""
        shutil.rmtree(self.path / ".work", ignore_errors=True)
        expected = {entry["path"] for entry in manifest["files"]} | {MANIFEST_NAME}
        found, unexpected = [], []
        for path in sorted(self.path.rglob("*")):
            relative = path.relative_to(self.path)
            if any(part.startswith(".") for part in relative.parts):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            elif path.is_file() and relative.parts[0] not in DESCRIBED_FOLDERS:
                (found if relative.as_posix() in expected else unexpected).append(relative.as_posix())
        missing = sorted(expected - set(found))
        if unexpected or missing:
            raise BuildError(
                f"{self.path} does not match its manifest (unlisted: {unexpected[:5] or 'none'}, missing: {missing[:5] or 'none'}); "
                "the version was not moved into place: remove that folder and build again"
            )


# Where a staging folder kept on an object store (--work-on-store) is copied on each machine: a fixed path, not the
# user's cache or TMPDIR, which may differ between the driver and the workers.
SHARED_WORK_ROOT = Path("/tmp/bayling-work")


def url_key(url: str) -> str:
    """A folder name for the local staging folder of an output URL: one per URL, so that a rerun resumes."""
    return hashlib.sha256(storage.shown(url).encode()).hexdigest()[:16]


class RemoteLock:
    """A lock object on an object store: created only if absent (a conditional PUT, `open(..., "xb")` in s3fs),
    deleted on release. It says which host and process hold it, nothing more."""

    def __init__(self, url: str):
        self.url = url
        self.held = False

    def acquire(self) -> None:
        data = storage.folder(storage.parent(self.url))
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            try:
                with data.open(storage.name(self.url), "xb") as f:
                    f.write(json.dumps(holder).encode())
            except (ValueError, NotImplementedError):  # a filesystem without exclusive create: look, then write
                print(f"warning: {storage.shown(self.url)}: this store cannot create an object only if it is absent, so two "
                      "builds of this version started at the same moment could both run", file=sys.stderr)  # fmt: skip
                if data.exists(storage.name(self.url)):
                    raise FileExistsError(self.url) from None
                data.pipe_file(storage.name(self.url), json.dumps(holder).encode())
        except FileExistsError:
            held_by = storage.read_text(self.url) or "unknown"
            raise BuildError(f"another build of this version is running, or one was killed: {storage.shown(self.url)} exists "
                             f"({held_by}); wait for it to finish, or remove that object once sure no build runs") from None  # fmt: skip
        self.held = True

    def release(self) -> None:
        if self.held:
            storage.folder(storage.parent(self.url)).rm(storage.name(self.url))
            self.held = False
