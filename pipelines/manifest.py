"""manifest.json: what a build was made from and what it holds (schema: schemas.records.MANIFEST_SCHEMA)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
from pathlib import Path

import pyarrow as pa

from schemas.records import MANIFEST_SCHEMA

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
_MAP_FIELDS = {"arguments", "rows_per_split", "rows_per_language", "rows_per_direction", "rows_per_task", "removed", "decontamination", "mixture"}


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


def read_manifest(folder: Path) -> dict | None:
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (line {e.lineno}): {e.msg}") from None
