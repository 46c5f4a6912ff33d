"""Faults in training checkpoints: a corrupt or partial newest checkpoint, or one of NaN weights, is skipped for
the previous one that verifies, and NaN weights are never saved or exported.

The torchrun tests (slow-marked: each starts two ranks) share one uninterrupted 3-step run of the tiny CPU config
with a checkpoint after every step; each damages a copy of its checkpoints the way a disk or a killed run would,
resumes with torchrun, and compares the per-step losses with the uninterrupted run's.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from tests.training.test_train import SEQ_LEN, read_losses, torchrun
from training import checkpoint
from training.checkpoint import CHECKSUMS, NonFiniteError

STEPS = 3
CORRUPT_BYTES = 4 * 1024 * 1024
INVERTED = bytes(255 - value for value in range(256))  # every byte becomes another


def run_args(out: Path, build: Path, steps: int = STEPS) -> list[str]:
    return [f"data.path={build}", f"logging.folder={out}", f"checkpoint.folder={out}/checkpoints",
            f"checkpoint.export_folder={out}/final", "checkpoint.interval=1", "checkpoint.keep_last=3",
            f"training.steps={steps}", f"training.seq_len={SEQ_LEN}", "logging.progress_bar=false",
            "logging.tensorboard=false"]


def nonfinite_exports(folders: list[Path]) -> int:
    """How many of the exported models hold a NaN or infinite weight."""
    return sum(
        any(not bool(torch.isfinite(t).all()) for t in load_file(folder / "model.safetensors").values())
        for folder in folders
    )


@pytest.fixture(scope="module")
def uninterrupted(small_build, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    result = torchrun(run_args(out, small_build), out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step-00000001", "step-00000002", "step-00000003"]
    return out


def resumable_copy(uninterrupted: Path, tmp_path: Path) -> Path:
    """A new run folder holding a copy of the uninterrupted run's checkpoints."""
    out = tmp_path / "run"
    shutil.copytree(uninterrupted / "checkpoints", out / "checkpoints")
    return out


def largest_shard(step_folder: Path) -> Path:
    return max(step_folder.glob("*.distcp"), key=lambda p: p.stat().st_size)


def overwrite_inside(path: Path, count: int) -> None:
    """Replaces `count` bytes in the middle of `path` with other bytes; the size stays the same."""
    size = path.stat().st_size
    count = min(count, size // 2)
    with path.open("r+b") as stream:
        stream.seek((size - count) // 2)
        original = stream.read(count)
        stream.seek((size - count) // 2)
        stream.write(original.translate(INVERTED))
    assert path.stat().st_size == size


@pytest.mark.slow
def test_corrupt_newest_checkpoint_resumes_from_the_previous_one(uninterrupted, small_build, tmp_path):
    out = resumable_copy(uninterrupted, tmp_path)
    shard = largest_shard(out / "checkpoints" / "step-00000003")
    assert shard.stat().st_size > 2 * CORRUPT_BYTES  # the tiny model's shards hold the 128k-token embedding
    overwrite_inside(shard, CORRUPT_BYTES)

    result = torchrun(run_args(out, small_build), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"warning: checkpoint step-00000003 skipped: {shard}: sha256 does not match" in result.stderr
    assert "step-00000002 at step 2" in result.stderr
    expected, resumed = read_losses(uninterrupted), read_losses(out)
    assert resumed == {3: expected[3]}  # exactly: the same seed, data position and weights
    # The corrupt step 3 is kept aside for inspection, and the resumed run saved step 3 anew.
    assert "moved to step-00000003.corrupt" in result.stderr
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step-00000001", "step-00000002", "step-00000003", "step-00000003.corrupt"]
    assert checkpoint.read_checksums(out / "checkpoints" / "step-00000003")["files"]
    exports = [uninterrupted / "final", out / "final"]
    bad = nonfinite_exports(exports)
    print(f"NaN exports: {bad} of {len(exports)}")
    assert bad == 0


@pytest.mark.slow
def test_partial_checkpoints_are_skipped(uninterrupted, small_build, tmp_path):
    """Step 3 lost its checksum file (killed while saving), step 2 the end of a shard (a full disk): resume from
    step 1."""
    out = resumable_copy(uninterrupted, tmp_path)
    (out / "checkpoints" / "step-00000003" / CHECKSUMS).unlink()
    truncated = largest_shard(out / "checkpoints" / "step-00000002")
    size = truncated.stat().st_size
    with truncated.open("r+b") as stream:
        stream.truncate(size // 2)

    result = torchrun(run_args(out, small_build), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"checkpoint step-00000003 skipped: {out / 'checkpoints' / 'step-00000003'}: no {CHECKSUMS}" \
        in result.stderr
    assert f"checkpoint step-00000002 skipped: {truncated}: {size // 2} bytes, {CHECKSUMS} says {size}" \
        in result.stderr
    assert "step-00000001 at step 1" in result.stderr
    expected, resumed = read_losses(uninterrupted), read_losses(out)
    assert resumed == {2: expected[2], 3: expected[3]}
    # The unfinished step 3 was removed by the next save; the truncated step 2, complete once, is kept aside.
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step-00000001", "step-00000002", "step-00000002.corrupt", "step-00000003"]
    bad = nonfinite_exports([out / "final"])
    print(f"NaN exports: {bad} of 1")
    assert bad == 0


def poison_weight(step_folder: Path, key: str) -> None:
    """Sets one value of a saved weight to NaN and writes checksums that match: a checkpoint saved, intact, from
    weights that had already diverged."""
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save, torch_save_to_dcp

    plain = step_folder.parent / "plain.pt"
    dcp_to_torch_save(step_folder, plain)
    state = torch.load(plain, weights_only=True)
    state["app"]["model"][key].view(-1)[0] = float("nan")
    torch.save(state, plain)
    for path in [*step_folder.glob("*.distcp"), step_folder / ".metadata"]:
        path.unlink()
    torch_save_to_dcp(plain, step_folder)
    plain.unlink()
    recorded = json.loads((step_folder / CHECKSUMS).read_text())
    recorded["files"] = {
        p.name: {"bytes": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
        for p in sorted(step_folder.iterdir()) if p.name != CHECKSUMS
    }
    (step_folder / CHECKSUMS).write_text(json.dumps(recorded))


@pytest.mark.slow
def test_a_checkpoint_of_nan_weights_is_skipped_for_the_previous_one(uninterrupted, small_build, tmp_path):
    """Step 3's files are intact and match their checksums, but a weight in them is NaN: resume skips it like a
    corrupt one, resumes from step 2 and gives the uninterrupted run's loss and a finite export."""
    out = resumable_copy(uninterrupted, tmp_path)
    poison_weight(out / "checkpoints" / "step-00000003", "model.layers.0.mlp.up_proj.weight")

    result = torchrun(run_args(out, small_build), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("warning: checkpoint step-00000003 skipped: " f"{out / 'checkpoints' / 'step-00000003'}: non-finite weights "
            "in model.layers.0.mlp.up_proj.weight; moved to step-00000003.corrupt") in result.stderr  # fmt: skip
    assert "step-00000002 at step 2" in result.stderr
    expected, resumed = read_losses(uninterrupted), read_losses(out)
    assert resumed == {3: expected[3]}
    bad = nonfinite_exports([out / "final"])
    print(f"NaN exports: {bad} of 1")
    assert bad == 0


# -- the same rules in one process, without training (a process group of one) ----------------------------------
@pytest.fixture
def group_of_one():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def fake_checkpoint(folder: Path, step: int, complete: bool = True) -> Path:
    """A step folder with two files of known content and, when complete, their checksums (rank 0 writes them)."""
    target = folder / f"step-{step:08d}"
    target.mkdir(parents=True)
    (target / "__0_0.distcp").write_bytes(bytes(range(256)) * 64)
    (target / "rank-0.pt").write_bytes(b"step %d" % step)
    if complete:
        checkpoint._write_checksums(target, step)
    return target


def test_verify_names_the_damaged_file(group_of_one, tmp_path):
    good = fake_checkpoint(tmp_path, 1)
    assert checkpoint.verify(good) is None
    flipped = fake_checkpoint(tmp_path, 2)
    overwrite_inside(flipped / "__0_0.distcp", 16)
    assert checkpoint.verify(flipped) == f"{flipped / '__0_0.distcp'}: sha256 does not match {CHECKSUMS} " \
                                          "(the file is corrupt)"
    cut = fake_checkpoint(tmp_path, 3)
    (cut / "rank-0.pt").write_bytes(b"st")
    assert checkpoint.verify(cut).startswith(f"{cut / 'rank-0.pt'}: 2 bytes, {CHECKSUMS} says 6")
    missing = fake_checkpoint(tmp_path, 4)
    (missing / "rank-0.pt").unlink()
    assert checkpoint.verify(missing) == f"{missing / 'rank-0.pt'}: missing"
    garbled = fake_checkpoint(tmp_path, 5)
    (garbled / CHECKSUMS).write_text("{")
    assert checkpoint.verify(garbled).startswith(f"{garbled / CHECKSUMS}: not a valid checksum file")
    unfinished = fake_checkpoint(tmp_path, 6, complete=False)
    assert checkpoint.verify(unfinished) == f"{unfinished}: no {CHECKSUMS}: the save did not finish"


def test_latest_verified_skips_newer_damaged_ones(group_of_one, tmp_path, capsys):
    fake_checkpoint(tmp_path, 1)
    good = fake_checkpoint(tmp_path, 2)
    corrupt = fake_checkpoint(tmp_path, 3)
    overwrite_inside(corrupt / "__0_0.distcp", 16)
    fake_checkpoint(tmp_path, 4, complete=False)
    assert checkpoint.latest_verified(tmp_path) == good
    warnings = capsys.readouterr().err
    assert f"checkpoint step-00000004 skipped: {tmp_path / 'step-00000004'}: no {CHECKSUMS}" in warnings
    assert f"checkpoint step-00000003 skipped: {corrupt / '__0_0.distcp'}: sha256 does not match" in warnings
    assert "moved to step-00000003.corrupt" in warnings and "step-00000001" not in warnings
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-00000001", "step-00000002", "step-00000003.corrupt", "step-00000004"]


def test_no_verified_checkpoint_is_an_error_not_a_fresh_start(group_of_one, tmp_path):
    corrupt = fake_checkpoint(tmp_path, 5)
    (corrupt / "rank-0.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="no checkpoint verifies: .*step-00000005/rank-0.pt: 0 bytes.*"
                                         "checkpoint.resume=false"):
        checkpoint.latest_verified(tmp_path)
    assert corrupt.is_dir()  # nothing moved: the run did not go on
    only_unfinished = tmp_path / "other"
    fake_checkpoint(only_unfinished, 1, complete=False)
    assert checkpoint.latest_verified(only_unfinished) is None  # a first save that was killed: start over


def test_keep_last_spares_the_new_checkpoint_and_later_skipped_ones(group_of_one, tmp_path):
    """Resumed from step 2 past a corrupt step 9: saving step 3 with keep_last=1 removes steps 1, 2 and the
    unfinished step 5, never step 3 itself, and leaves step 9 to be replaced when the run gets there."""
    for step in (1, 2, 9):
        fake_checkpoint(tmp_path, step)
    fake_checkpoint(tmp_path, 5, complete=False)
    new = fake_checkpoint(tmp_path, 3)
    checkpoint._remove_old(tmp_path, new, 3, keep_last=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000003", "step-00000009"]
    fake_checkpoint(tmp_path, 4)
    checkpoint._remove_old(tmp_path, tmp_path / "step-00000004", 4, keep_last=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000003", "step-00000004", "step-00000009"]


def test_nonfinite_steps_are_skipped_up_to_the_limit(group_of_one):
    from training.train import NonFiniteGuard

    strict = NonFiniteGuard(0, torch.device("cpu"))
    assert strict.skip(1, 2.5, 0.7) is False
    with pytest.raises(NonFiniteError, match=r"step 2: loss nan, gradient norm 0.7: not finite"):
        strict.skip(2, float("nan"), 0.7)
    lenient = NonFiniteGuard(2, torch.device("cpu"))
    assert [lenient.skip(s, 1.0, g) for s, g in ((1, float("inf")), (2, 1.0), (3, float("nan")))] == [
        True, False, True]
    with pytest.raises(NonFiniteError, match=r"step 4: .*3 such steps, training.max_nonfinite_steps is 2"):
        lenient.skip(4, float("nan"), float("nan"))


# A skipped first step runs the schedule before any optimizer step, which torch warns about; that is the intent.
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_a_skipped_step_leaves_the_weights_and_clears_the_gradients(group_of_one):
    from training.config import OptimizerConfig, ScheduleConfig
    from training.train import NonFiniteGuard, build_optimizer, build_scheduler, update

    model = torch.nn.Linear(3, 2)
    optimizer = build_optimizer(model, OptimizerConfig(lr=0.1), torch.device("cpu"))
    scheduler = build_scheduler(optimizer, ScheduleConfig(warmup_steps=1), total_steps=10)
    guard = NonFiniteGuard(1, torch.device("cpu"))
    before = model.weight.detach().clone()
    model(torch.tensor([[1.0, float("nan"), 0.0]])).sum().backward()
    assert update(model, optimizer, scheduler, guard, 1, float("nan"), 1.0)[1] is True
    assert torch.equal(model.weight, before) and model.weight.grad is None and not optimizer.state
    assert scheduler.last_epoch == 1 and guard.skipped == 1
    model(torch.ones(1, 3)).sum().backward()
    grad_norm, skipped = update(model, optimizer, scheduler, guard, 2, 0.5, 1.0)
    assert skipped is False and grad_norm > 0 and not torch.equal(model.weight, before)


def test_nan_weights_are_neither_saved_nor_exported(group_of_one, tmp_path):
    model = torch.nn.Linear(4, 2)
    with torch.no_grad():
        model.weight[1, 2] = float("inf")
    with pytest.raises(NonFiniteError, match="not written: non-finite weights in weight"):
        checkpoint.save(tmp_path / "checkpoints", 7, model, None, None, {}, keep_last=2)
    with pytest.raises(NonFiniteError, match="export .*final: not written: non-finite weights in weight"):
        checkpoint.export_hf(model, tmp_path / "final")
    assert list(tmp_path.iterdir()) == []


def test_resume_skips_an_intact_checkpoint_of_nan_weights(group_of_one, tmp_path, capsys):
    """Checkpoints saved by save(), the newest then given a NaN weight with checksums that match: latest_verified
    names it in a warning, sets it aside and returns the previous one, which loads finite weights."""
    from training.config import OptimizerConfig, ScheduleConfig
    from training.train import build_optimizer, build_scheduler

    model = torch.nn.Linear(4, 2)
    optimizer = build_optimizer(model, OptimizerConfig(lr=0.1), torch.device("cpu"))
    scheduler = build_scheduler(optimizer, ScheduleConfig(warmup_steps=1), total_steps=10)
    folder = tmp_path / "checkpoints"
    for step in (1, 2):
        model(torch.ones(1, 4)).sum().backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        checkpoint.save(folder, step, model, optimizer, scheduler, {"step": step}, keep_last=2)
    saved_at_1 = checkpoint.nonfinite_saved_weights(folder / "step-00000001")
    poison_weight(folder / "step-00000002", "weight")
    assert checkpoint.read_checksums(folder / "step-00000002")  # the files match their checksums

    assert saved_at_1 is None and checkpoint.latest_verified(folder) == folder / "step-00000001"
    warning = capsys.readouterr().err
    assert (f"warning: checkpoint step-00000002 skipped: {folder / 'step-00000002'}: non-finite weights in weight; "
            "moved to step-00000002.corrupt") in warning  # fmt: skip
    assert sorted(p.name for p in folder.iterdir()) == ["step-00000001", "step-00000002.corrupt"]
    fresh = torch.nn.Linear(4, 2)
    fresh_optimizer = build_optimizer(fresh, OptimizerConfig(lr=0.1), torch.device("cpu"))
    fresh_scheduler = build_scheduler(fresh_optimizer, ScheduleConfig(warmup_steps=1), total_steps=10)
    assert checkpoint.load(folder / "step-00000001", fresh, fresh_optimizer, fresh_scheduler)["step"] == 1
    assert checkpoint.nonfinite_parameters(fresh) == []


def test_the_same_rules_on_s3(group_of_one, s3_bucket, capsys):
    """A checkpoint folder on moto's S3 server: a corrupt newest checkpoint is skipped and moved aside (copied, as
    object storage has no rename), an unfinished one left for the next save, which removes it and the old ones."""
    import s3fs

    bucket = s3_bucket.bucket
    fs, url = s3fs.S3FileSystem(), f"s3://{bucket}/run/checkpoints"

    def fake(step: int, complete: bool = True, content: bytes = bytes(range(256)) * 64) -> str:
        target = f"{url}/step-{step:08d}"
        fs.pipe({f"{target}/__0_0.distcp": content, f"{target}/rank-0.pt": b"step %d" % step})
        if complete:
            checkpoint._write_checksums(target, step)
        return target

    def names() -> list[str]:
        fs.invalidate_cache()
        return sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"{bucket}/run/checkpoints"))

    fake(1)
    good = fake(2)
    corrupt = fake(3)
    fs.pipe(f"{corrupt}/__0_0.distcp", (bytes(range(256)) * 64)[:16] + INVERTED[:16] + (bytes(range(256)) * 64)[32:])
    fake(4, complete=False)
    assert checkpoint.verify(corrupt) == f"{corrupt}/__0_0.distcp: sha256 does not match {CHECKSUMS} (the file is corrupt)"
    assert checkpoint.latest_verified(url) == good
    warnings = capsys.readouterr().err
    assert f"checkpoint step-00000004 skipped: {url}/step-00000004: no {CHECKSUMS}" in warnings
    assert "moved to step-00000003.corrupt" in warnings
    assert names() == ["step-00000001", "step-00000002", "step-00000003.corrupt", "step-00000004"]
    new = fake(5)
    checkpoint._remove_old(url, new, 5, keep_last=1)
    assert names() == ["step-00000003.corrupt", "step-00000005"]
