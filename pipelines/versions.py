"""Which version a build becomes (`<store>/<name>/<version>/`, or --output), whether that version already holds
this build, and moving a finished build into place. A finished version is never overwritten."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from pipelines.manifest import bump as bumped, damaged_files, finished_versions, parse_version, read_manifest
from pipelines.staging import BuildError


def choose_version(name: str, build_key: str, store: Path, output: Path | None = None, version: str | None = None,
                   bump: str | None = None) -> tuple[str, Path]:  # fmt: skip
    """The version id and its folder: `output`, or <store>/<name>/<version>; `bump` (patch, minor, major) bumps the
    store's latest version."""
    if output is not None:
        manifest = read_manifest(output)
        version = version or (manifest or {}).get("version") or "v1.0.0"
        parse_version(version)
        return version, output
    folder = Path(store) / name
    versions = finished_versions(folder)
    if version:
        parse_version(version)
        if version not in versions:
            warn_if_same_build(folder, versions, version, build_key)
        return version, folder / version
    if bump or not versions:
        version = bumped(versions[-1], bump) if versions else "v1.0.0"
        warn_if_same_build(folder, versions, version, build_key)
        return version, folder / version
    latest = read_manifest(folder / versions[-1])
    if latest.get("build_key") == build_key:
        return versions[-1], folder / versions[-1]
    raise BuildError(
        f"the latest version, {folder / versions[-1]}, was built with other arguments (build key {latest.get('build_key')}) "
        "and a finished version is never overwritten: pass --bump patch|minor|major or --version for a new one"
    )


def warn_if_same_build(folder: Path, versions: list[str], version: str, build_key: str) -> None:
    """A new version of the same build key as an existing one holds the same rows: it is built (a Hub user may
    want the same data under a new tag), with a one-line warning naming the latest such version."""
    same = [v for v in versions if (read_manifest(folder / v) or {}).get("build_key") == build_key]
    if same:
        print(f"warning: {version} has the same build key as {same[-1]} ({build_key}): it will hold the same rows", file=sys.stderr)


def check_output(output: Path, version: str, build_key: str, hashes: bool = False) -> bool:
    """True when `output` already holds this very build. A finished version is never overwritten: this refuses
    a folder that holds another version or is not a finished build, or whose files do not match its manifest
    (sizes; with `hashes`, sha256 too); a build with other arguments under the same version is built aside and
    compared when done (see `keep_version`)."""
    manifest = read_manifest(output)
    if manifest is None:
        if output.exists() and any(output.iterdir()):
            raise BuildError(f"{output} exists and is not a finished build; choose another --output, or remove it")
        return False
    if "version" not in manifest:
        raise BuildError(f"{output} holds a build made before versions existed; choose another --output, or remove it")
    if manifest.get("version") != version:
        raise BuildError(f"{output} holds version {manifest.get('version')}, not {version}: a finished version is never overwritten")
    damaged = damaged_files(output, manifest, hashes)
    if damaged:
        raise BuildError(f"version {version} in {output} does not match its manifest: {'; '.join(damaged[:3])}"
                         + (f" (and {len(damaged) - 3} more)" if len(damaged) > 3 else "")
                         + "; a finished version is never overwritten: restore it (e.g. from the Hub) or remove it and build again")  # fmt: skip
    return manifest.get("build_key") == build_key


def keep_version(staging: Path, output: Path) -> dict:
    """Move a finished build into place as its version, or compare it with the version already there: the same
    content hash is a no-op, another is refused and the existing version stays as it was."""
    built = read_manifest(staging)
    existing = read_manifest(output)
    if existing is None:
        output.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, output)
        return built
    shutil.rmtree(staging)
    if existing["content_hash"] != built["content_hash"]:
        raise BuildError(
            f"version {existing['version']} already exists in {output} with content hash {existing['content_hash']}; "
            f"this build gives {built['content_hash']}. A finished version is never overwritten: "
            "pass --bump patch|minor|major or another --version"
        )
    print(f"{output} already holds these rows (content hash {existing['content_hash']}): nothing changed.")
    return existing
