"""Checkpoints with torch.distributed.checkpoint, resume from the latest, keep-last-k, and the Hugging Face export.

A checkpoint is a folder `step-00000100/` holding the sharded model and optimizer (DCP, each rank writes its
shards), one `rank-N.pt` per rank with what differs between ranks (data position, RNG states) and what is
small (step, scheduler), and a `complete` marker written last: a folder without it (a run killed while saving)
is ignored on resume and removed by the next save.
"""

from __future__ import annotations

import re
import shutil
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

STEP_FOLDER = re.compile(r"^step-(\d{8})$")
MARKER = "complete"


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


def step_folders(folder: Path, complete_only: bool = True) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = STEP_FOLDER.match(path.name)
        if match and (not complete_only or (path / MARKER).is_file()):
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest(folder: str | Path) -> Path | None:
    found = step_folders(Path(folder))
    return found[-1][1] if found else None


def save(folder: str | Path, step: int, model, optimizer, scheduler, data_state: dict, keep_last: int) -> Path:
    """Every rank calls this. Returns the checkpoint folder."""
    folder = Path(folder)
    target = folder / f"step-{step:08d}"
    rank = dist.get_rank()
    if rank == 0 and target.exists():  # an unfinished save of the same step
        shutil.rmtree(target)
    dist.barrier()
    dcp.save({"app": ModelAndOptimizer(model, optimizer)}, checkpoint_id=str(target))
    extra = {"step": step, "scheduler": scheduler.state_dict(), "data": data_state, "rng": rng_state()}
    torch.save(extra, target / f"rank-{rank}.pt")
    dist.barrier()
    if rank == 0:
        (target / MARKER).write_text(f"{dist.get_world_size()}\n")
        for _, path in step_folders(folder, complete_only=False):
            if path != target and not (path / MARKER).is_file():
                shutil.rmtree(path, ignore_errors=True)
        for _, path in step_folders(folder)[:-keep_last]:
            shutil.rmtree(path, ignore_errors=True)
    dist.barrier()
    return target


def load(path: str | Path, model, optimizer, scheduler) -> dict:
    """Loads the checkpoint into model, optimizer, scheduler and the RNG; returns the rank's extra state
    (step, data position)."""
    path = Path(path)
    saved_world = int((path / MARKER).read_text().strip() or 0)
    if saved_world != dist.get_world_size():
        # The data position is per rank: resuming on another world size would repeat or skip rows.
        raise ValueError(f"{path}: saved by {saved_world} ranks, cannot resume with {dist.get_world_size()}")
    dcp.load({"app": ModelAndOptimizer(model, optimizer)}, checkpoint_id=str(path))
    # Only our own files, and only tensors, numbers and strings in them.
    extra = torch.load(path / f"rank-{dist.get_rank()}.pt", weights_only=True)
    scheduler.load_state_dict(extra["scheduler"])
    set_rng_state(extra["rng"])
    return extra


def export_hf(model, folder: str | Path, tokenizer=None, dtype: torch.dtype = torch.bfloat16) -> Path | None:
    """Writes the model in Hugging Face format (config.json, model.safetensors, tokenizer files) that
    AutoModelForCausalLM.from_pretrained loads. Every rank calls this; rank 0 writes."""
    from transformers import AutoModelForCausalLM

    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    folder = Path(folder)
    if dist.get_rank() == 0:
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
    dist.barrier()
    return folder if dist.get_rank() == 0 else None
