"""manifest.json: what a build was made from and what it holds (schema: schemas.records.MANIFEST_SCHEMA)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import subprocess
from pathlib import Path

import pyarrow as pa

from pipelines import storage
from schemas.records import MANIFEST_SCHEMA

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 4  # 3: eval_sets (decontamination's evaluation sets, Hub ones with their commit); 4: files[].bytes
_MAP_FIELDS = {"arguments", "rows_per_split", "rows_per_config", "rows_per_language", "rows_per_direction", "rows_per_task", "removed", "decontamination", "mixture"}
VERSION_PATTERN = re.compile(r"v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")
HASHED_FOLDERS = ("data/", "removed/")  # with LICENSE and recipe.yaml: what a version holds, not how it is described


def code_version() -> dict:
    try:
        package = importlib.metadata.version("bayling-data")
    except importlib.metadata.PackageNotFoundError:
        package = "unknown"
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = ""
    return {"package": package, "git_commit": commit}


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(folder: Path, path: Path, rows: int = 0, digest: str | None = None) -> dict:
    """A manifest entry of a file of the version in `folder`: its path there, sha256, rows and size."""
    path = Path(path)
    return {"path": path.relative_to(folder).as_posix(), "sha256": digest or sha256_file(path), "rows": rows, "bytes": path.stat().st_size}


def damaged_files(folder: Path | str, manifest: dict, hashes: bool = False) -> list[str]:
    """What in a finished version does not match its manifest: a missing file, another size (recorded since format
    4), and with `hashes` another sha256 (which reads every byte). Empty when the version is whole. `folder`: a local
    folder or a URL (`pipelines.storage`: sizes from one listing, hashes streamed)."""
    data = storage.folder(folder)
    found = storage.sizes(data)
    problems = []
    for entry in manifest.get("files", []):
        where = storage.shown(storage.join(folder, entry["path"]))
        if entry["path"] not in found:
            problems.append(f"{where}: missing")
        elif entry.get("bytes") is not None and found[entry["path"]] != entry["bytes"]:
            problems.append(f"{where}: {found[entry['path']]} bytes, the manifest says {entry['bytes']}")
        elif hashes and storage.sha256(data, entry["path"]) != entry["sha256"]:
            problems.append(f"{where}: sha256 differs from the manifest's {entry['sha256']}")
    return problems


def content_hash(files: list[dict]) -> str:
    """The version's identity: a sha256 over the path, sha256 and row count of every data, removed, LICENSE and
    recipe file. The card, its chart and the manifest are left out: they describe the content (and name the code
    commit and command line), so a rebuild with the same rows under the same version is recognized as such."""
    entries = sorted((f["path"], f["sha256"], f["rows"]) for f in files if f["path"].startswith(HASHED_FOLDERS) or f["path"] in ("LICENSE", "recipe.yaml"))
    return "sha256:" + hashlib.sha256(json.dumps(entries, separators=(",", ":")).encode()).hexdigest()


def parse_version(version: str) -> tuple[int, int, int]:
    match = VERSION_PATTERN.fullmatch(version)
    if not match:
        raise ValueError(f"--version: expected a semantic version like v1.0.0, got {version!r}")
    return tuple(int(part) for part in match.groups())  # type: ignore[return-value]


def bump(version: str, part: str) -> str:
    major, minor, patch = parse_version(version)
    bumped = {"major": (major + 1, 0, 0), "minor": (major, minor + 1, 0), "patch": (major, minor, patch + 1)}[part]
    return "v{}.{}.{}".format(*bumped)


def finished_versions(folder: Path | str) -> list[str]:
    """The finished versions in a store folder `<root>/<name>/` (local or a URL), oldest first: those with a
    manifest (on an object store, a prefix without one is an unfinished upload)."""
    if storage.is_remote(folder):
        data = storage.folder(folder)
        names = [path.split("/")[-2] for path in data.glob(f"v*/{MANIFEST_NAME}")] if data.isdir("") else []
    else:
        names = [p.name for p in Path(folder).glob("v*") if (p / MANIFEST_NAME).is_file()]
    return sorted((n for n in names if VERSION_PATTERN.fullmatch(n)), key=parse_version)


def validate(manifest: dict) -> dict:
    """Check a manifest against MANIFEST_SCHEMA; raises ValueError naming the field that does not fit."""
    missing = [name for name in MANIFEST_SCHEMA.names if name not in manifest]
    unknown = [name for name in manifest if name not in MANIFEST_SCHEMA.names]
    if missing or unknown:
        raise ValueError(f"manifest: missing keys {missing}, unknown keys {unknown}")
    for field in MANIFEST_SCHEMA:
        value = manifest[field.name]
        if field.name in _MAP_FIELDS:  # JSON objects are Arrow maps
            value = {k: list(v.items()) if isinstance(v, dict) else v for k, v in value.items()}
            value = list(value.items())
        elif field.name == "sources":
            value = [{**s, "details": list(s["details"].items())} for s in value]
        try:
            pa.array([value], type=field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, KeyError) as e:
            raise ValueError(f"manifest: key {field.name!r} does not fit the schema: {e}") from None
    return manifest


def write_manifest(folder: Path, manifest: dict) -> None:
    validate(manifest)
    tmp = folder / f".{MANIFEST_NAME}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MANIFEST_NAME)


def read_manifest(folder: Path | str) -> dict | None:
    """The manifest of the version in `folder` (a local folder or a URL); None where there is none, which marks an
    unfinished version."""
    path = storage.join(folder if storage.is_remote(folder) else Path(folder), MANIFEST_NAME)
    text = storage.read_text(path)
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{storage.shown(path)}: not valid JSON (line {e.lineno}): {e.msg}") from None
