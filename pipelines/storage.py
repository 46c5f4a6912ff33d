"""Where a version lives: a local folder or an fsspec URL (`s3://`, `gs://`, `hf://`, `file://`), reached through
datatrove's `DataFolder` (an fsspec filesystem rooted at the URL). Credentials and endpoints come from the usual
environment of each filesystem (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL for s3fs/botocore;
HF_TOKEN for hf://): nothing here takes, logs or records them, and URLs are shown without any user:password part.

On an object store there is no rename: a single PUT (or a multipart upload, completed in one call) is atomic, so
each file of a version is written once at its final key, and the version's manifest.json is written last: a
prefix without it is an unfinished version, which readers, `check_output` and `--verify` treat as such (datatrove
marks completion the same way, with a file written when a task is done).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from datatrove.io import DataFolder, get_datafolder
from fsspec.core import url_to_fs
from fsspec.utils import get_protocol

LOCAL_PROTOCOLS = ("file", "local")


def is_remote(location: str | os.PathLike) -> bool:
    """True for a URL of a filesystem other than the local one (s3://, gs://, hf://, memory://...)."""
    return get_protocol(str(location)) not in LOCAL_PROTOCOLS


def local_path(location: str | os.PathLike) -> Path:
    """The local folder of a local location: a path, or a file:// URL."""
    text = str(location)
    return Path(text.removeprefix("file://")) if text.startswith("file://") else Path(text)


def location(value: str | os.PathLike) -> str | Path:
    """A location as the build keeps it: a Path for a local one (file:// URLs included), the URL as given otherwise,
    without a trailing slash. `Path("s3://b/x")` would make it the local folder `s3:/b/x`: remote URLs stay strings."""
    return str(value).rstrip("/") if is_remote(value) else local_path(value)


def join(base: str | Path, *parts: str) -> str | Path:
    """`base/part/...` for a Path or a URL."""
    if isinstance(base, Path):
        return base.joinpath(*parts)
    return "/".join([base.rstrip("/"), *parts])


def parent(path: str | Path) -> str | Path:
    return path.parent if isinstance(path, Path) else path.rstrip("/").rsplit("/", 1)[0]


def name(path: str | Path) -> str:
    return path.name if isinstance(path, Path) else path.rstrip("/").rsplit("/", 1)[-1]


def folder(location: str | os.PathLike) -> DataFolder:
    """The DataFolder at a location (datatrove's; its filesystem from the URL and the environment). fsspec shares one
    filesystem object per URL kind and caches its listings: they are dropped here, so that what another process wrote
    or removed meanwhile (a damaged or deleted file) is seen."""
    with installed(location):
        data = get_datafolder(str(location))
    data.fs.invalidate_cache()
    return data


@contextmanager
def installed(location: str | os.PathLike) -> Iterator[None]:
    """A URL whose filesystem is not installed (gcsfs for gs://, s3fs for s3://) is a usage error naming it."""
    try:
        yield
    except ImportError as e:
        raise ValueError(f"{shown(location)}: {e}") from None


def url_fs(url: str):
    """(filesystem, path) of a URL (fsspec's `url_to_fs`)."""
    with installed(url):
        return url_to_fs(url)


def shown(location: str | os.PathLike) -> str:
    """A location as it may appear in messages, logs and manifests: a URL without user or password."""
    text = str(location)
    parts = urlsplit(text)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return text


def read_text(path: str | Path) -> str | None:
    """A file's text, None where it does not exist."""
    if isinstance(path, Path):
        return path.read_text(encoding="utf-8") if path.is_file() else None
    data = folder(parent(path))
    try:
        with data.open(name(path), "r", encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def sha256(data: DataFolder, relative: str) -> str:
    """sha256 of a file of a DataFolder, streamed (a block of 8 MiB at a time: one ranged GET each on S3)."""
    digest = hashlib.sha256()
    with data.open(relative, "rb", block_size=8 << 20) as f:
        for block in iter(lambda: f.read(8 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sizes(data: DataFolder) -> dict[str, int]:
    """Every file under a DataFolder (hidden ones too) and its size, by path relative to it: one listing."""
    if not data.isdir(""):
        return {}
    found = data.find("", detail=True, withdirs=False)
    root = data.path.rstrip("/")
    return {path[len(root) + 1:] if path.startswith(root + "/") else path: info.get("size") or 0 for path, info in found.items()}


def cache_root() -> Path:
    """This machine's cache of the build (XDG_CACHE_HOME, default ~/.cache): local copies and staging folders."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bayling"


def expand(pattern: str) -> list[str]:
    """The files a source's `path:` glob matches, sorted, as local paths: a URL's files are copied into this
    machine's cache first (`local_copy`), so that every reader (polars, pyarrow, the line parsers) reads a local file
    and the rows do not depend on where the files were."""
    if not is_remote(pattern):
        return sorted(glob.glob(pattern))
    fs, path = url_fs(pattern)
    return [str(local_copy(fs.unstrip_protocol(found))) for found in sorted(fs.glob(path))]


def local_copy(url: str) -> Path:
    """A local copy of the file at `url`: <cache>/remote/<protocol>/<path>, fetched again when the object's size or
    ETag changed. Raises FileNotFoundError naming the URL where there is no such file."""
    fs, path = url_fs(url)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{shown(url)}: no such file") from None
    if info.get("type") == "directory":
        raise IsADirectoryError(f"{shown(url)}: a folder, not a file")
    protocol = get_protocol(url)
    local = cache_root() / "remote" / protocol / path.lstrip("/")
    stamp = json.dumps({"size": info.get("size"), "etag": info.get("ETag") or info.get("etag") or info.get("blob_id") or info.get("mtime")}, default=str)
    marker = local.with_name(f".{local.name}.stamp")
    if local.is_file() and marker.is_file() and marker.read_text() == stamp:
        return local
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex}.tmp")  # tasks of one machine may fetch it at once
    fs.get_file(path, str(tmp))
    os.replace(tmp, local)
    marker.write_text(stamp)
    return local


def local_version(url: str, paths: list[str]) -> Path:
    """A local copy of the files `paths` of the version at `url` (`local_copy` each: unchanged files are not fetched
    again); returns its folder."""
    for path in paths:
        local_copy(join(url, path))
    fs, root = url_fs(url)
    return cache_root() / "remote" / get_protocol(url) / root.lstrip("/")


class WorkMirror:
    """A build's staging folder kept on an object store (`remote`) for workers that share no folder, each working in
    a local copy at the same absolute path (`local`: the stages' steps hold absolute paths). A task pulls what is on
    the store before it runs and pushes what it wrote before datatrove marks it complete (`runtime.make_executor`),
    so a task marked complete has its files on the store, and a task on any machine finds every earlier stage's.

    A file is pulled (pushed) where the other side lacks it or has another size. The files of a build are written
    once each, under a temporary name first (hidden: never pushed), and a task run again rewrites the same bytes,
    so a file of the same size is the same file."""

    def __init__(self, local: Path, remote: str, keep_hidden: tuple[str, ...] = ()):
        self.local = Path(local)
        self.remote = remote
        self.keep_hidden = keep_hidden  # hidden names that are not temporary files (the build key marker)

    def _local_sizes(self) -> dict[str, int]:
        if not self.local.is_dir():
            return {}
        return {p.relative_to(self.local).as_posix(): p.stat().st_size for p in self.local.rglob("*") if p.is_file()}

    def _pushed(self, relative: str) -> bool:
        name = relative.rsplit("/", 1)[-1]
        return not name.startswith(".") or name in self.keep_hidden

    def pull(self) -> None:
        remote = folder(self.remote)
        have = self._local_sizes()
        for relative, size in sorted(sizes(remote).items()):
            if have.get(relative) != size:
                target = self.local / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")  # tasks of one machine pull at once
                remote.get_file(relative, str(tmp))
                os.replace(tmp, target)

    def push(self) -> None:
        remote = folder(self.remote)
        there = sizes(remote)
        for relative, size in sorted(self._local_sizes().items()):
            if self._pushed(relative) and there.get(relative) != size:
                remote.put_file(str(self.local / relative), relative)

    def remove_remote(self) -> None:
        remote = folder(self.remote)
        if remote.isdir(""):
            remote.rm("", recursive=True)
