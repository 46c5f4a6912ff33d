"""Checkpoints with torch.distributed.checkpoint, resume from the newest verified one, keep-last-k, and the Hugging
Face export.

A checkpoint is a folder `step-00000100/` holding the sharded model and optimizer (DCP, each rank writes its
shards), one `rank-N.pt` per rank with what differs between ranks (data position, RNG states) and what is
small (step, scheduler), and `checksums.json` written last (the world size, and the size and sha256 of every
other file). A checkpoint is complete only when `checksums.json` exists and every file matches it: resume takes
the newest one that verifies and names the others it skipped. A folder without `checksums.json` (a run killed
while saving) is removed by the next save. Neither a checkpoint nor an export is written from weights that are not
finite, and a checkpoint whose files verify but whose saved weights are not finite (written by a version without
that rule, or damaged in a way that kept its checksums) is skipped on resume like a corrupt one.

The folder may be local or a URL for fsspec (s3://bucket/run/checkpoints, with credentials and endpoint from the
usual environment: AWS_*, AWS_ENDPOINT_URL...), and so may the export folder: the same files, written with
torch.distributed.checkpoint's fsspec writer. On object storage there is no rename: checksums.json is one PUT, which
appears whole or not at all, so it marks completion there as well.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)
from torch.distributed.checkpoint.stateful import Stateful


class Where:
    """A checkpoint file or folder, on local disk or at an fsspec URL, with the few path operations checkpoints
    use. `str()` gives the local path or the URL, as messages name it."""

    def __init__(self, where: str | Path | Where, _fs=None):
        if isinstance(where, Where):
            self.fs, self.path, self.local = where.fs, where.path, where.local
            return
        if _fs is None:
            import fsspec

            _fs, where = fsspec.core.url_to_fs(str(where))
        from fsspec.implementations.local import LocalFileSystem

        self.fs, self.path = _fs, str(where).rstrip("/") or "/"
        self.local = isinstance(_fs, LocalFileSystem)

    def __truediv__(self, name: str) -> Where:
        return Where(f"{self.path}/{name}", self.fs)

    def __eq__(self, other) -> bool:
        return isinstance(other, Where) and (self.fs, self.path) == (other.fs, other.path)

    def __hash__(self) -> int:
        return hash(self.path)

    def __str__(self) -> str:
        return str(self.public())

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def with_name(self, name: str) -> Where:
        return Where(f"{self.path.rsplit('/', 1)[0]}/{name}", self.fs)

    def public(self) -> Path | str:
        """What callers get: a Path for a local one, the URL otherwise."""
        return Path(self.path) if self.local else self.fs.unstrip_protocol(self.path)

    def fresh(self) -> Where:
        """Itself, with the listings cached by the filesystem forgotten: other ranks write here too."""
        if not self.local:
            self.fs.invalidate_cache(self.path)
        return self

    def is_file(self) -> bool:
        return self.fs.isfile(self.path)

    def is_dir(self) -> bool:
        return self.fs.isdir(self.path)

    def exists(self) -> bool:
        return self.fs.exists(self.path)

    def size(self) -> int:
        return int(self.fs.size(self.path))

    def open(self, mode: str = "rb"):
        return self.fs.open(self.path, mode)

    def read_text(self) -> str:
        with self.open("rb") as stream:
            return stream.read().decode("utf-8")

    def subfolders(self) -> list[Where]:
        return [Where(info["name"], self.fs) for info in self.fresh().fs.ls(self.path, detail=True)
                if info["type"] == "directory"]

    def files(self) -> list[str]:
        """The files under it, recursively, relative to it (posix)."""
        prefix = self.fresh().path + "/"
        return sorted(name.removeprefix(prefix) for name in self.fs.find(self.path))

    def rmtree(self) -> None:
        if self.local:
            shutil.rmtree(self.path, ignore_errors=True)
        elif self.exists():
            self.fs.rm(self.path, recursive=True)

    def rename(self, target: Where) -> None:
        if self.local:
            os.rename(self.path, target.path)
        else:  # no rename on object storage: a copy of each object, then the removal
            for name in self.files():
                self.fs.copy(f"{self.path}/{name}", f"{target.path}/{name}")
            self.fs.rm(self.path, recursive=True)


STEP_FOLDER = re.compile(r"^step-(\d{8})$")
CHECKSUMS = "checksums.json"
# What marked a complete checkpoint before checksums: such a folder cannot be verified, and is never removed.
LEGACY_MARKER = "complete"
DCP_METADATA = ".metadata"  # torch.distributed.checkpoint's index of the saved tensors
MODEL_KEYS = "app.model."  # where save() puts the model's weights among the saved keys


class NonFiniteError(RuntimeError):
    """The loss, the gradients or the weights are NaN or infinite: nothing is saved or exported from them."""


class CheckpointProblem(ValueError):
    """A checkpoint folder that is incomplete or does not match its checksums."""


class ModelAndOptimizer(Stateful):
    """What DCP saves and loads in place: the sharded model and optimizer states."""

    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer

    def state_dict(self):
        model_state, optimizer_state = get_state_dict(self.model, self.optimizer)
        return {"model": model_state, "optimizer": optimizer_state}

    def load_state_dict(self, state):
        set_state_dict(self.model, self.optimizer, model_state_dict=state["model"],
                       optim_state_dict=state["optimizer"])


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def step_folders(folder: str | Path | Where) -> list[tuple[int, Where]]:
    """Every `step-NNNNNNNN` folder, complete or not, by step."""
    folder = Where(folder)
    if not folder.fresh().is_dir():
        return []
    found = []
    for path in folder.subfolders():
        match = STEP_FOLDER.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found, key=lambda entry: entry[0])


def is_complete(path: str | Path | Where) -> bool:
    """Whether the save of this folder finished (its files are not checked here: see `verify`)."""
    return (Where(path) / CHECKSUMS).is_file()


def _sha256(path: Where) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _describe(path: Where, names: list[str]) -> dict[str, dict]:
    return {name: {"bytes": (path / name).size(), "sha256": _sha256(path / name)} for name in names}


def _checkpoint_files(path: Where) -> list[str]:
    return [name for name in path.files() if not name.rsplit("/", 1)[-1].startswith(CHECKSUMS)]


def read_checksums(path: str | Path | Where) -> dict:
    """The content of `path/checksums.json`; CheckpointProblem when it is missing or malformed."""
    path = Where(path)
    where = path / CHECKSUMS
    if not where.is_file():
        if (path / LEGACY_MARKER).is_file():
            raise CheckpointProblem(f"{path}: saved without {CHECKSUMS} (an older version): cannot be verified")
        raise CheckpointProblem(f"{path}: no {CHECKSUMS}: the save did not finish")
    try:
        recorded = json.loads(where.read_text())
        files = recorded["files"]
        world_size = int(recorded["world_size"])
        if not files or not all(isinstance(v.get("sha256"), str) and isinstance(v.get("bytes"), int)
                                for v in files.values()):
            raise ValueError("an entry without bytes or sha256")
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise CheckpointProblem(f"{where}: not a valid checksum file ({error})") from None
    return {"files": files, "world_size": world_size}


def _mismatch(path: Where, files: dict[str, dict]) -> str | None:
    """The first file of `files` (name -> bytes, sha256) that is missing or differs, described; sizes first, so a
    truncated file is found without reading the others."""
    for name, expected in files.items():
        file = path / name
        if not file.is_file():
            return f"{file}: missing"
        size = file.size()
        if size != expected["bytes"]:
            return f"{file}: {size} bytes, {CHECKSUMS} says {expected['bytes']} (truncated or replaced)"
    for name, expected in files.items():
        if _sha256(path / name) != expected["sha256"]:
            return f"{path / name}: sha256 does not match {CHECKSUMS} (the file is corrupt)"
    return None


def verify(path: str | Path) -> str | None:
    """None when the checkpoint is complete, every file matches its checksum and the saved model weights are
    finite, else what is wrong (the same on every rank). Every rank calls this and hashes its share of the files."""
    path = Where(path).fresh()
    rank, world_size = dist.get_rank(), dist.get_world_size()
    files: dict = {}
    try:
        files = read_checksums(path)["files"]
        mine = sorted(files)[rank::world_size]
        problem = _mismatch(path, {name: files[name] for name in mine})
    except CheckpointProblem as error:
        problem = str(error)
    problems: list[str | None] = [None] * world_size
    dist.all_gather_object(problems, problem)
    problem = next((p for p in problems if p), None)
    if problem is None and DCP_METADATA in files:
        problem = nonfinite_saved_weights(path)
    return problem


def _reader(path: Where):
    if path.local:
        return dcp.FileSystemReader(path.path)
    from torch.distributed.checkpoint._fsspec_filesystem import FsspecReader

    return FsspecReader(str(path))


def _writer(path: Where):
    if path.local:
        return dcp.FileSystemWriter(path.path)
    from torch.distributed.checkpoint._fsspec_filesystem import FsspecWriter

    return FsspecWriter(str(path))


def nonfinite_saved_weights(path: str | Path | Where) -> str | None:
    """None when every saved model weight is finite, else which are not (the same on every rank). Each rank reads
    its share of the weights (as verify hashes its share of the files), here and not in `load`, so that resume
    falls back to an older checkpoint as it does for a corrupt file. Only run on files that verified."""
    path = Where(path)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    try:
        from torch.distributed.checkpoint.metadata import TensorStorageMetadata

        saved = _reader(path).read_metadata().state_dict_metadata
        weights = sorted(key for key, entry in saved.items()
                         if key.startswith(MODEL_KEYS) and isinstance(entry, TensorStorageMetadata))  # fmt: skip
        bad = []
        for key in weights[rank::world_size]:  # one weight at a time: memory bounded by the largest, not the share
            loaded = {key: torch.empty(saved[key].size, dtype=saved[key].properties.dtype)}
            with warnings.catch_warnings():  # each rank reads alone on purpose (no_dist), which torch warns about
                warnings.filterwarnings("ignore", message="torch.distributed is disabled")
                dcp.load(loaded, storage_reader=_reader(path), no_dist=True)
            if not bool(torch.isfinite(loaded[key]).all()):
                bad.append(key.removeprefix(MODEL_KEYS))
    except Exception as error:  # a checkpoint that cannot be read is one not to resume from, on every rank alike
        bad = [f"(unreadable: {type(error).__name__}: {error})"]
    found: list[list[str] | None] = [None] * world_size
    dist.all_gather_object(found, bad)
    names = sorted({name for names in found for name in names})
    if not names:
        return None
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"{path}: non-finite weights in {shown}"


def latest_verified(folder: str | Path) -> Path | str | None:
    """The newest checkpoint in `folder` that verifies. Each newer one is named in a warning: an unfinished save is
    left for the next save to remove, a complete one that does not verify is moved aside to `<name>.corrupt` (kept
    to be inspected, out of resume's and keep_last's way). None when there is none to resume from; ValueError
    when checkpoints were saved but none verifies, rather than starting over. Every rank calls this."""
    skipped = []
    for _, path in reversed(step_folders(folder)):
        problem = verify(path)
        if problem is None:
            if dist.get_rank() == 0:
                _warn_and_set_aside(skipped)
            dist.barrier()
            return path.public()
        skipped.append((path, problem))
    claimed_complete = [path.name for path, _ in skipped if is_complete(path) or (path / LEGACY_MARKER).is_file()]
    if claimed_complete:
        raise ValueError(
            f"checkpoint.folder {folder}: no checkpoint verifies: "
            + "; ".join(problem for _, problem in skipped)
            + ". Restore or remove them, or set checkpoint.resume=false to start over"
        )
    if dist.get_rank() == 0:
        _warn_and_set_aside(skipped)
    return None


def _warn_and_set_aside(skipped: list[tuple[Where, str]]) -> None:
    for path, problem in skipped:
        if not is_complete(path):
            print(f"warning: checkpoint {path.name} skipped: {problem}", file=sys.stderr)
            continue
        aside = path.with_name(f"{path.name}.corrupt")
        number = 1
        while aside.exists():
            number += 1
            aside = path.with_name(f"{path.name}.corrupt-{number}")
        path.rename(aside)
        print(f"warning: checkpoint {path.name} skipped: {problem}; moved to {aside.name}", file=sys.stderr)


def _fsync_write(path: Where, write) -> None:
    """Writes the file; a local one is flushed to the disk before this returns. (An object is stored whole when its
    upload finishes.)"""
    if not path.local:
        with path.open("wb") as stream:
            write(stream)
        return
    with open(path.path, "wb") as stream:
        write(stream)
        stream.flush()
        os.fsync(stream.fileno())


def _write_checksums(target: str | Path | Where, step: int) -> None:
    """Hashes the saved files, each rank its share, and has rank 0 write checksums.json: the last file, so its
    presence means every other file was complete when it was written."""
    target = Where(target)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    names = [_checkpoint_files(target) if rank == 0 else None]
    dist.broadcast_object_list(names, src=0)
    shares: list[dict | None] = [None] * world_size
    dist.all_gather_object(shares, _describe(target, names[0][rank::world_size]))
    if rank == 0:
        files = {name: entry for share in shares for name, entry in sorted(share.items())}
        content = json.dumps({"step": step, "world_size": world_size, "files": dict(sorted(files.items()))},
                             indent=1)
        if not target.local:  # one PUT: the object appears whole or not at all
            _fsync_write(target / CHECKSUMS, lambda stream: stream.write(content.encode()))
            return
        partial = target / f"{CHECKSUMS}.partial"
        _fsync_write(partial, lambda stream: stream.write(content.encode()))
        os.replace(partial.path, (target / CHECKSUMS).path)


def _remove_old(folder: str | Path | Where, target: str | Path | Where, step: int, keep_last: int) -> None:
    """After `target` is complete: removes unfinished saves and all but the `keep_last` newest complete checkpoints
    up to `step`. Neither `target` nor a folder saved before checksums is removed, nor one of a later step (left
    by a run started over with checkpoint.resume=false; resume moves later ones that fail to verify aside)."""
    target = Where(target)
    earlier = []
    for number, path in step_folders(folder):
        if path == target or ((path / LEGACY_MARKER).is_file() and not is_complete(path)):
            continue
        if not is_complete(path):
            path.rmtree()
        elif number < step:
            earlier.append(path)
    for path in earlier[: max(len(earlier) - (keep_last - 1), 0)]:
        path.rmtree()


def nonfinite_parameters(model) -> list[str]:
    """Names of the parameters with a NaN or infinite value on any rank (every rank calls this)."""
    mine = []
    for name, parameter in model.named_parameters():
        local = parameter.to_local() if hasattr(parameter, "to_local") else parameter
        if not bool(torch.isfinite(local.detach()).all()):
            mine.append(name)
    found: list[list[str] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(found, mine)
    return sorted({name for names in found for name in names})


def _refuse_nonfinite(model, what: str) -> None:
    bad = nonfinite_parameters(model)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise NonFiniteError(f"{what}: not written: non-finite weights in {shown}")


def save(folder: str | Path, step: int, model, optimizer, scheduler, data_state: dict, keep_last: int,
         counters: dict | None = None) -> Path | str:
    """Every rank calls this. Returns the checkpoint folder. `counters` (small numbers such as the count of
    skipped steps) come back from `load`. NonFiniteError, and nothing written, when the weights are not finite."""
    folder = Where(folder)
    target = folder / f"step-{step:08d}"
    _refuse_nonfinite(model, f"checkpoint {target}")
    rank = dist.get_rank()
    if rank == 0 and target.fresh().exists():  # an unfinished save of the same step, or one resume skipped
        target.rmtree()
    dist.barrier()
    dcp.save({"app": ModelAndOptimizer(model, optimizer)}, storage_writer=_writer(target))
    extra = {"step": step, "scheduler": scheduler.state_dict(), "data": data_state, "rng": rng_state(),
             "counters": dict(counters or {})}
    _fsync_write(target / f"rank-{rank}.pt", lambda stream: torch.save(extra, stream))
    dist.barrier()
    _write_checksums(target, step)
    if rank == 0:
        _remove_old(folder, target, step, keep_last)
    dist.barrier()
    return target.public()


def load(path: str | Path, model, optimizer, scheduler) -> dict:
    """Loads the checkpoint into model, optimizer, scheduler and the RNG; returns the rank's extra state
    (step, data position, counters). It does not hash the files: `latest_verified` does."""
    path = Where(path)
    saved_world = read_checksums(path)["world_size"]
    if saved_world != dist.get_world_size():
        # The data position is per rank: resuming on another world size would repeat or skip rows.
        raise ValueError(f"{path}: saved by {saved_world} ranks, cannot resume with {dist.get_world_size()}")
    dcp.load({"app": ModelAndOptimizer(model, optimizer)}, storage_reader=_reader(path))
    # Only our own files, and only tensors, numbers and strings in them.
    with (path / f"rank-{dist.get_rank()}.pt").open("rb") as stream:
        extra = torch.load(stream, weights_only=True)
    scheduler.load_state_dict(extra["scheduler"])
    set_rng_state(extra["rng"])
    return extra


def export_hf(model, folder: str | Path, tokenizer=None, dtype: torch.dtype = torch.bfloat16) -> Path | str | None:
    """Writes the model in Hugging Face format (config.json, model.safetensors, tokenizer files) that
    AutoModelForCausalLM.from_pretrained loads. Every rank calls this; rank 0 writes. NonFiniteError, and nothing
    written, when the weights are not finite."""
    _refuse_nonfinite(model, f"export {folder}")
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    where = Where(folder)
    if dist.get_rank() == 0:
        if where.local:
            _save_hf(model, full, dtype, tokenizer, Path(where.path))
        else:  # written here, then uploaded: save_pretrained writes local files
            import tempfile

            with tempfile.TemporaryDirectory(prefix="export-") as local:
                _save_hf(model, full, dtype, tokenizer, Path(local))
                where.fs.put(f"{local}/", where.path, recursive=True)
    dist.barrier()
    return where.public() if dist.get_rank() == 0 else None


def _save_hf(model, full: dict, dtype: torch.dtype, tokenizer, folder: Path) -> None:
    from transformers import AutoModelForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    config = model.config
    config.use_cache = True  # what inference wants; training turned it off
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=dtype)
    plain.load_state_dict({k: v.to(dtype) for k, v in full.items()}, assign=True)
    plain.config.dtype = dtype
    plain.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
