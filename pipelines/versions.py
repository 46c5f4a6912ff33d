"""Which version a build becomes (`<store>/<name>/<version>/`, or --output), whether that version already holds
this build, and moving a finished build into place. A finished version is never overwritten."""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import suppress
from pathlib import Path

from pipelines import storage
from pipelines.manifest import MANIFEST_NAME, bump as bumped, damaged_files, finished_versions, parse_version, read_manifest
from pipelines.staging import BUILD_KEY_NAME, BuildError


def choose_version(name: str, build_key: str, store: Path | str, output: Path | str | None = None, version: str | None = None,
                   bump: str | None = None) -> tuple[str, Path | str]:  # fmt: skip
    """The version id and its folder: `output`, or <store>/<name>/<version>; `bump` (patch, minor, major) bumps the
    store's latest version. Folders are local paths or URLs (`pipelines.storage.location`)."""
    if output is not None:
        output = storage.location(output)
        manifest = read_manifest(output)
        version = version or (manifest or {}).get("version") or "v1.0.0"
        parse_version(version)
        return version, output
    folder = storage.join(storage.location(store), name)
    versions = finished_versions(folder)
    if version:
        parse_version(version)
        if version not in versions:
            warn_if_same_build(folder, versions, version, build_key)
        return version, storage.join(folder, version)
    if bump or not versions:
        version = bumped(versions[-1], bump) if versions else "v1.0.0"
        warn_if_same_build(folder, versions, version, build_key)
        return version, storage.join(folder, version)
    latest = read_manifest(storage.join(folder, versions[-1]))
    if latest.get("build_key") == build_key:
        return versions[-1], storage.join(folder, versions[-1])
    raise BuildError(
        f"the latest version, {storage.shown(storage.join(folder, versions[-1]))}, was built with other arguments (build key {latest.get('build_key')}) "
        "and a finished version is never overwritten: pass --bump patch|minor|major or --version for a new one"
    )


def warn_if_same_build(folder: Path | str, versions: list[str], version: str, build_key: str) -> None:
    """A new version of the same build key as an existing one holds the same rows: it is built (a Hub user may
    want the same data under a new tag), with a one-line warning naming the latest such version."""
    same = [v for v in versions if (read_manifest(storage.join(folder, v)) or {}).get("build_key") == build_key]
    if same:
        print(f"warning: {version} has the same build key as {same[-1]} ({build_key}): it will hold the same rows", file=sys.stderr)


def check_output(output: Path | str, version: str, build_key: str, hashes: bool = False) -> bool:
    """True when `output` already holds this very build. A finished version is never overwritten: this refuses
    a folder that holds another version or is not a finished build, or whose files do not match its manifest
    (sizes; with `hashes`, sha256 too); a build with other arguments under the same version is built aside and
    compared when done (see `keep_version`). On an object store, a prefix without a manifest that holds an upload of
    ours (its `.build_key` object) is an unfinished version: it is uploaded again."""
    manifest = read_manifest(output)
    shown = storage.shown(output)
    if manifest is None:
        if storage.is_remote(output):
            found = storage.sizes(storage.folder(output))
            if found and BUILD_KEY_NAME not in found:
                raise BuildError(f"{shown} holds objects and is not a finished build; choose another --output, or remove them")
        elif output.exists() and any(output.iterdir()):
            raise BuildError(f"{output} exists and is not a finished build; choose another --output, or remove it")
        return False
    if "version" not in manifest:
        raise BuildError(f"{shown} holds a build made before versions existed; choose another --output, or remove it")
    if manifest.get("version") != version:
        raise BuildError(f"{shown} holds version {manifest.get('version')}, not {version}: a finished version is never overwritten")
    damaged = damaged_files(output, manifest, hashes)
    if damaged:
        raise BuildError(f"version {version} in {shown} does not match its manifest: {'; '.join(damaged[:3])}"
                         + (f" (and {len(damaged) - 3} more)" if len(damaged) > 3 else "")
                         + "; a finished version is never overwritten: restore it (e.g. from the Hub) or remove it and build again")  # fmt: skip
    return manifest.get("build_key") == build_key


def keep_version(staging: Path, output: Path | str) -> dict:
    """Move a finished build into place as its version, or compare it with the version already there: the same
    content hash is a no-op, another is refused and the existing version stays as it was. On an object store the
    version is uploaded (`upload_version`) and the local staging folder removed."""
    built = read_manifest(staging)
    existing = read_manifest(output)
    if existing is None and not storage.is_remote(output):
        output.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, output)
        return built
    if existing is None:
        upload_version(staging, output, built["build_key"])
    shutil.rmtree(staging)
    if storage.is_remote(output):  # the folder of this URL's local staging folders (pipelines.staging), now empty
        with suppress(OSError):
            staging.parent.rmdir()
    if existing is None:
        return built
    if existing["content_hash"] != built["content_hash"]:
        raise BuildError(
            f"version {existing['version']} already exists in {storage.shown(output)} with content hash {existing['content_hash']}; "
            f"this build gives {built['content_hash']}. A finished version is never overwritten: "
            "pass --bump patch|minor|major or another --version"
        )
    print(f"{storage.shown(output)} already holds these rows (content hash {existing['content_hash']}): nothing changed.")
    return existing


def upload_version(local: Path, url: str, build_key: str) -> None:
    """Upload a sealed version to an object store without rename: each file is one PUT or one multipart upload, which
    S3 makes visible whole or not at all, written at its final key. First a `.build_key` object (marks the prefix as
    an upload of ours, see `check_output`), then every file but the manifest; then leftovers of an earlier unfinished
    upload are removed and the sizes checked; the manifest goes last and marks the version finished."""
    remote = storage.folder(url)
    remote.pipe_file(BUILD_KEY_NAME, (build_key + "\n").encode())
    files = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
    for relative in files:
        if relative != MANIFEST_NAME:
            remote.put_file(str(local / relative), relative)
    found = storage.sizes(remote)
    leftovers = sorted(set(found) - set(files) - {BUILD_KEY_NAME})
    if leftovers:
        remote.rm(leftovers)
    wrong = [f for f in files if f != MANIFEST_NAME and found.get(f) != (local / f).stat().st_size]
    if wrong:
        raise BuildError(f"the upload to {storage.shown(url)} is incomplete ({wrong[:3]}); the version was not marked finished: build again")
    remote.put_file(str(local / MANIFEST_NAME), MANIFEST_NAME)
    remote.rm(BUILD_KEY_NAME)
