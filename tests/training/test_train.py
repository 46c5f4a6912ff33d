"""training/: the FSDP2 trainer on the CPU with 2 gloo processes, a tiny random-init Llama, the real Llama-3
tokenizer and the rows of the embedded build (the small_build fixture)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from training import config as config_module

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY = REPO_ROOT / "training" / "configs" / "tiny-llama-cpu.yaml"
SEQ_LEN = 128

# The tiny config, made smaller still: tied embeddings halve the 128k-vocabulary matrices that dominate it.
TINY_MODEL = {
    "model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 1024, "vocab_size": 128256,
    "tie_word_embeddings": True,
}


# -- the configuration ----------------------------------------------------------------------------------------
def test_config_yaml_and_overrides(tmp_path):
    cfg = config_module.load(TINY, ["--optimizer.lr", "1e-5", "training.steps=7", "--data.shuffle=false",
                                    "model.config.hidden_size=32", "data.epochs=null"])
    assert cfg.optimizer.lr == 1e-5 and cfg.training.steps == 7 and cfg.data.shuffle is False
    assert cfg.model.config["hidden_size"] == 32 and cfg.model.config["num_hidden_layers"] == 2
    assert cfg.data.epochs is None and cfg.data.chat_format == "bayling-llama3"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optimizer.lrr=1"], "command line: optimizer.lrr: unknown key; did you mean optimizer.lr?"),
        (["optimiser.lr=1"], "command line: optimiser: unknown key; did you mean optimizer?"),
        (["training.steps=many"], "training.steps: expected an integer, got 'many'"),
        (["training.steps=0"], "training.steps: must be at least 1"),
        (["training.max_nonfinite_steps=-1"], "training.max_nonfinite_steps: must be at least 0"),
        (["data.chat_format=llama4"], "data.chat_format: 'llama4' is not one of"),
        (["data.shuffle_windw=3"], "data.shuffle_windw: unknown key; did you mean data.shuffle_window"),
        (["--training.steps"], "--training.steps needs a value"),
        (["optimizer.beta2=1"], "command line: optimizer.beta2: must be below 1"),
        (["training.device=tpu"], "command line: training.device: 'tpu' is not one of 'auto', 'cuda' or 'cpu'"),
        (["training.max_nonfinite_steps=-1"], "command line: training.max_nonfinite_steps: must be at least 0"),
        (["model.config=3"], "command line: model.config: expected a mapping, got 3"),
    ],
)
def test_config_errors_name_the_key(overrides, message):
    with pytest.raises(config_module.ConfigError, match=None) as error:
        config_module.load(TINY, overrides)
    assert message in str(error.value)


def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  name_or_path: x\ntraining:\n  stpes: 3\n")
    with pytest.raises(config_module.ConfigError, match=r"bad.yaml: training.stpes: unknown key; did you mean training.steps\?"):
        config_module.load(bad)


# -- schedule and MFU ----------------------------------------------------------------------------------------
def test_warmup_then_cosine():
    from training.train import lr_factor

    factors = [lr_factor(step, warmup_steps=4, total_steps=14, min_lr_ratio=0.1) for step in range(16)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0 and factors[9] == pytest.approx(0.55) and factors[14] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[4:], factors[5:])) and factors[15] == pytest.approx(0.1)


def test_mfu_counts_llama_3_2_1b():
    from transformers import AutoConfig, AutoModelForCausalLM

    from training.metrics import flops_per_token, parameter_counts

    config = config_module.load(REPO_ROOT / "training" / "configs" / "llama-1b-bench.yaml").model.config
    config = AutoConfig.for_model(**config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total, embedding = parameter_counts(model)
    # Llama-3.2-1B has 1,235,814,400 parameters with its output layer tied to the 128256 x 2048 embedding.
    assert (total, embedding) == (1_235_814_400 + 128256 * 2048, 128256 * 2048)
    attention = 12 * 16 * 32 * 64 * 4096
    assert flops_per_token(config, total, embedding, 4096) == 6 * 1_235_814_400 + attention
    config.tie_word_embeddings = True
    with torch.device("meta"):
        tied = AutoModelForCausalLM.from_config(config)
    assert parameter_counts(tied) == (total, embedding)  # the tied output layer still costs its matmul


# -- the command line, checkpoints and resume ----------------------------------------------------------------
def torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "training.train", "--config", str(TINY), *args]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def read_losses(folder: Path) -> dict[int, float]:
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return {entry["step"]: entry["loss"] for entry in map(json.loads, lines)}  # a resumed step overwrites


@pytest.mark.slow
def test_torchrun_trains_checkpoints_resumes_and_exports(small_build, tmp_path):
    out = tmp_path / "run"
    args = [f"data.path={small_build}", f"logging.folder={out}", f"checkpoint.folder={out}/checkpoints",
            f"checkpoint.export_folder={out}/final", "checkpoint.interval=3", "checkpoint.keep_last=2",
            "training.steps=12", f"training.seq_len={SEQ_LEN}", "logging.progress_bar=false"]
    first = torchrun(args, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    losses = read_losses(out)
    assert sorted(losses) == list(range(1, 13))
    # 12 steps at lr 3e-3 on the rows of the build: the model learns the format and the frequent tokens. (Each step
    # sees other rows, so one step's loss is noisy: with 8 steps the drop was 0.46-0.5+ depending on which rows the
    # ids put first.)
    assert sum(losses[s] for s in (10, 11, 12)) / 3 < losses[1] - 0.5, losses
    # keep_last=2: steps 3, 6 and 9 saved on the interval, 12 at the end; 3 and 6 are gone.
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000009", "step-00000012"]

    # Resume from step 9 (as if the run had died before its last save): steps 10 to 12 give the same losses.
    shutil.rmtree(out / "checkpoints" / "step-00000012")
    (out / "metrics.jsonl").rename(out / "first.jsonl")
    again = torchrun(args, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from" in again.stderr and "step-00000009" in again.stderr
    resumed = read_losses(out)
    assert sorted(resumed) == [10, 11, 12]
    assert all(resumed[s] == pytest.approx(losses[s], rel=1e-5) for s in (10, 11, 12)), (resumed, losses)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out / "final")
    tokenizer = AutoTokenizer.from_pretrained(out / "final")
    assert model.config.num_hidden_layers == 2 and len(tokenizer) == 128256
    assert sorted(p.name for p in (out / "final").glob("*.safetensors")) == ["model.safetensors"]
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("module", ["training.train", "training.ray_launcher"])
@pytest.mark.parametrize(
    "override, message",
    [
        ("training.stesp=3", "command line: training.stesp: unknown key; did you mean training.steps?"),
        # this one gets past the config checks: torchrun starts and imports torch and transformers first
        pytest.param("data.path=no/such/build", "data.path: no/such/build is not a folder", marks=pytest.mark.slow),
    ],
)
def test_bad_input_exits_with_a_clear_error(tmp_path, override, message, module):
    extra = ["--workers", "2"] if module == "training.ray_launcher" else []
    result = subprocess.run(
        [sys.executable, "-m", module, *extra, "--config", str(TINY), override],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert message in result.stderr


# -- FSDP against one process ----------------------------------------------------------------------------------
def fixed_global_batches(build: Path, steps: int, per_step: int) -> list[list[dict]]:
    """`steps` global batches of `per_step` packed sequences of real rows, the same in every process."""
    from training.data import DataConfig, build_batches
    from training.tokenizers import load_tokenizer

    batches = build_batches(DataConfig(path=str(build), chat_format="bayling-llama3"), load_tokenizer("llama3"),
                            rank=0, world_size=1, seed=0, seq_len=SEQ_LEN, micro_batch_size=1)
    return [[next(batches) for _ in range(per_step)] for _ in range(steps)]


def _fsdp_worker(rank: int, world_size: int, port: int, build: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    import torch.distributed as dist

    from training import checkpoint
    from training.checkpoint import export_hf
    from training.config import ModelConfig, OptimizerConfig, ScheduleConfig
    from training.packing import model_inputs
    from training.parallelize import build_model, full_state_dict_on_rank0, init_distributed, model_config
    from training.train import build_optimizer, build_scheduler, forward_backward

    torch.manual_seed(0)
    device = torch.device("cpu")
    mesh = init_distributed(device)
    model_cfg = ModelConfig(config=dict(TINY_MODEL))
    model = build_model(model_cfg, mesh, device, param_dtype="float32", reduce_dtype="float32", seed=0)
    optimizer_cfg, schedule_cfg = OptimizerConfig(lr=3e-3, weight_decay=0.1), ScheduleConfig(warmup_steps=1)
    optimizer = build_optimizer(model, optimizer_cfg, device)
    scheduler = build_scheduler(optimizer, schedule_cfg, total_steps=3)
    global_batches = fixed_global_batches(Path(build), steps=3, per_step=4)
    checkpoints = Path(out) / "checkpoints"

    # Each rank takes its half of every global batch, as two micro-batches (gradient accumulation).
    fsdp_losses, fsdp_grads = [], None
    for step, global_batch in enumerate(global_batches):
        mine = global_batch[rank::world_size]
        loss, _ = forward_backward(model, mine, device, "sdpa")
        fsdp_losses.append(loss)
        if step == 0:
            fsdp_grads = {name: p.grad.full_tensor() for name, p in model.named_parameters()}
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        checkpoint.save(checkpoints, step + 1, model, optimizer, scheduler, {"step": step + 1}, keep_last=2)
    final_weights = {name: p.full_tensor() for name, p in model.named_parameters()}

    # Resume from step 2 into a model built from another seed: step 3 gives the same loss and weights.
    kept = sorted(p.name for p in checkpoints.iterdir())
    resumed = build_model(model_cfg, mesh, device, param_dtype="float32", reduce_dtype="float32", seed=1)
    resumed_optimizer = build_optimizer(resumed, optimizer_cfg, device)
    resumed_scheduler = build_scheduler(resumed_optimizer, schedule_cfg, total_steps=3)
    extra = checkpoint.load(checkpoints / "step-00000002", resumed, resumed_optimizer, resumed_scheduler)
    resumed_loss, _ = forward_backward(resumed, global_batches[2][rank::world_size], device, "sdpa")
    resumed_optimizer.step()
    resumed_weights_diff = max(
        float((p.full_tensor() - final_weights[name]).abs().max()) for name, p in resumed.named_parameters()
    )
    # Activation checkpointing recomputes the layers in the backward: the same gradients.
    recomputing = build_model(model_cfg, mesh, device, param_dtype="float32", reduce_dtype="float32", seed=0,
                              activation_checkpointing=True)
    forward_backward(recomputing, global_batches[0][rank::world_size], device, "sdpa")
    checkpointing_grad_diff = max(
        float((p.grad.full_tensor() - fsdp_grads[name.replace("._checkpoint_wrapped_module", "")]).abs().max())
        for name, p in recomputing.named_parameters()
    )
    probe = global_batches[0][0]
    with torch.no_grad():
        fsdp_logits = model(**model_inputs(probe, "sdpa")).logits
    folder = Path(out) / "export"
    export_hf(model, folder, dtype=torch.float32)

    if rank == 0:
        from transformers import AutoModelForCausalLM

        # One process, no FSDP, no process group in the loss: the same steps on the whole global batches.
        plain = AutoModelForCausalLM.from_config(model_config(model_cfg), attn_implementation="sdpa")
        plain.load_state_dict(full_state_dict_on_rank0(model_cfg, model_config(model_cfg), seed=0))
        reference = torch.optim.AdamW(plain.parameters(), lr=3e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
        reference_schedule = build_scheduler(reference, schedule_cfg, total_steps=3)
        from training.train import loss_sum, trained_tokens

        plain_losses, grad_diff = [], 0.0
        for step, global_batch in enumerate(global_batches):
            count = sum(trained_tokens(b) for b in global_batch)
            total = 0.0
            for batch in global_batch:
                local = loss_sum(plain, batch, model_inputs(batch, "sdpa")) / count
                local.backward()
                total += float(local)
            plain_losses.append(total)
            if step == 0:
                grad_diff = max(
                    float((p.grad - fsdp_grads[name]).abs().max() / (p.grad.abs().max() + 1e-12))
                    for name, p in plain.named_parameters()
                )
            reference.step()
            reference_schedule.step()
            reference.zero_grad()
        exported = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa")
        with torch.no_grad():
            exported_logits = exported(**model_inputs(probe, "sdpa")).logits
        result = {
            "kept_checkpoints": kept,
            "resumed_step": extra["step"],
            "resumed_data_state": extra["data"],
            "resumed_loss": resumed_loss,
            "resumed_weights_diff": resumed_weights_diff,
            "checkpointing_grad_diff": checkpointing_grad_diff,
            "fsdp_losses": fsdp_losses,
            "plain_losses": plain_losses,
            "grad_relative_diff": grad_diff,
            "grad_names": sorted(fsdp_grads) == sorted(n for n, _ in plain.named_parameters()),
            "export_logits_max_diff": float((exported_logits - fsdp_logits).abs().max()),
        }
        (Path(out) / "result.json").write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow  # two gloo ranks and one plain process, each importing torch and training twice
def test_fsdp_on_two_ranks_equals_one_process_resumes_and_exports(small_build, tmp_path):
    mp.spawn(_fsdp_worker, args=(2, _free_port(), str(small_build), str(tmp_path)), nprocs=2, join=True)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["grad_names"]
    # fp32 on both sides; only the order of the sums differs.
    assert result["grad_relative_diff"] < 1e-4, result
    assert result["fsdp_losses"] == pytest.approx(result["plain_losses"], rel=1e-5), result
    assert result["fsdp_losses"][-1] < result["fsdp_losses"][0]
    assert result["export_logits_max_diff"] < 1e-5, result
    assert result["kept_checkpoints"] == ["step-00000002", "step-00000003"]
    assert result["resumed_step"] == 2 and result["resumed_data_state"] == {"step": 2}
    assert result["resumed_loss"] == result["fsdp_losses"][2]
    assert result["resumed_weights_diff"] == 0.0
    assert result["checkpointing_grad_diff"] < 1e-6, result


# -- Ray Train ------------------------------------------------------------------------------------------------
RAY_STEPS = 8
RAY_COMMON = ["training.steps=8", f"training.seq_len={SEQ_LEN}", "logging.progress_bar=false",
              "checkpoint.export_folder="]


def ray_launcher(args: list[str], cwd: Path, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "training.ray_launcher", "--workers", "2", "--config", str(TINY),
               "--storage-path", str(cwd / "ray-runs"), *args]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)


def logged_losses(folder: Path) -> list[tuple[int, float]]:
    """Every (step, loss) line of metrics.jsonl in order, a step logged again after a resume included."""
    return [(e["step"], e["loss"]) for e in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines())]


def max_abs_diff(losses: dict[int, float], reference: dict[int, float]) -> float:
    return max(abs(losses[step] - reference[step]) for step in reference)


@pytest.fixture(scope="module")
def torchrun_losses(small_build, tmp_path_factory) -> dict[int, float]:
    """The per-step losses of `torchrun --nproc_per_node 2` on the tiny config, no checkpoints."""
    folder = tmp_path_factory.mktemp("torchrun")
    result = torchrun([f"data.path={small_build}", *RAY_COMMON, "checkpoint.folder=", f"logging.folder={folder}/log"],
                      folder)
    assert result.returncode == 0, result.stderr[-3000:]
    losses = read_losses(folder / "log")
    assert sorted(losses) == list(range(1, RAY_STEPS + 1))
    return losses


@pytest.mark.slow
def test_ray_train_gives_the_same_losses_as_torchrun(small_build, torchrun_losses, tmp_path):
    process = ray_launcher([f"data.path={small_build}", *RAY_COMMON, "checkpoint.folder=",
                            f"logging.folder={tmp_path}/log"], tmp_path)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    losses = read_losses(tmp_path / "log")
    assert sorted(losses) == list(range(1, RAY_STEPS + 1))
    print(f"Ray Train vs torchrun, max abs loss diff over {RAY_STEPS} steps: {max_abs_diff(losses, torchrun_losses):.3g}")
    assert losses == pytest.approx(torchrun_losses, rel=1e-6, abs=0)
    assert list((tmp_path / "ray-runs").iterdir()), "Ray Train kept no run state under --storage-path"


def train_workers(launcher_pid: int) -> list[int]:
    """The processes of Ray Train workers started under `launcher_pid` (its local Ray), oldest first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [launcher_pid]
    while stack:
        pid = stack.pop()
        for child in children.get(pid, []):
            stack.append(child)
            try:
                if b"RayTrainWorker" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(child)
            except OSError:
                pass
    return sorted(found)


@pytest.mark.slow
def test_ray_train_restarts_a_killed_worker_from_the_last_checkpoint(small_build, torchrun_losses, tmp_path):
    """A worker killed after the step-4 checkpoint: Ray Train starts a new group, which resumes from the newest
    checkpoint and ends with torchrun's losses."""
    checkpoints = tmp_path / "checkpoints"
    process = ray_launcher([f"data.path={small_build}", *RAY_COMMON, f"checkpoint.folder={checkpoints}",
                            "checkpoint.interval=2", f"logging.folder={tmp_path}/log"], tmp_path)
    killed = None
    deadline = time.time() + 400
    while killed is None and process.poll() is None and time.time() < deadline:
        if (checkpoints / "step-00000004" / "checksums.json").is_file():
            workers = train_workers(process.pid)
            if len(workers) == 2:
                killed = workers[-1]
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    _, stderr = process.communicate(timeout=600)
    (tmp_path / "stderr.txt").write_text(stderr)
    assert killed is not None, "the run ended before a worker could be killed:\n" + stderr[-3000:]
    assert process.returncode == 0, stderr[-3000:]
    assert "[FailurePolicy] RETRY" in stderr, stderr[-3000:]  # Ray Train's controller restarted the group
    # (rank 0 prints it once; Ray may forward a line twice)
    resumes = set(re.findall(rf"resumed from {re.escape(str(checkpoints))}/step-\d{{8}} at step (\d+)", stderr))
    assert len(resumes) == 1, stderr[-3000:]
    resumed_at = int(resumes.pop())
    logged = logged_losses(tmp_path / "log")
    steps = [step for step, _ in logged]
    restart = len(steps) - 1 - steps[::-1].index(resumed_at + 1)  # the new group's first step
    assert resumed_at >= 4 and steps[restart:] == list(range(resumed_at + 1, RAY_STEPS + 1)), steps
    assert steps[:restart] == list(range(1, restart + 1)), steps
    before, after = dict(logged[:restart]), dict(logged[restart:])
    print(f"killed worker {killed} after step {steps[restart - 1]}, resumed at step {resumed_at}: max abs loss diff "
          f"to torchrun {max_abs_diff(before, {s: torchrun_losses[s] for s in before}):.3g} before, "
          f"{max_abs_diff(after, {s: torchrun_losses[s] for s in after}):.3g} after")
    assert before == pytest.approx({s: torchrun_losses[s] for s in before}, rel=1e-6, abs=0)
    assert after == pytest.approx({s: torchrun_losses[s] for s in after}, rel=1e-5, abs=0)
    assert sorted(p.name for p in checkpoints.iterdir())[-1] == f"step-{RAY_STEPS:08d}"


@pytest.mark.slow
def test_ray_train_on_two_nodes_with_everything_on_s3(small_build, torchrun_losses, s3_bucket, two_node_cluster,
                                                       tmp_path):
    """Ray Train on a 2-node cluster (a worker on each, separate temp folders, the code from the runtime
    environment) with the data, the checkpoints and the export on moto's S3 server: torchrun's losses."""
    import s3fs

    bucket = s3_bucket.bucket
    fs = s3fs.S3FileSystem()
    fs.put(f"{small_build}/data/", f"{bucket}/small/data", recursive=True)
    run = f"s3://{bucket}/run"
    process = ray_launcher(["--address", two_node_cluster, f"data.path=s3://{bucket}/small", *RAY_COMMON,
                            f"checkpoint.folder={run}/checkpoints", "checkpoint.interval=4",
                            f"checkpoint.export_folder={run}/final", f"logging.folder={tmp_path}/log"], tmp_path)
    _, stderr = process.communicate(timeout=900)
    assert process.returncode == 0, stderr[-3000:]
    losses = read_losses(tmp_path / "log")
    print(f"Ray Train on 2 nodes, S3 storage, vs torchrun: max abs loss diff {max_abs_diff(losses, torchrun_losses):.3g}")
    assert losses == pytest.approx(torchrun_losses, rel=1e-6, abs=0)
    fs.invalidate_cache()
    assert [p.rsplit("/", 1)[-1] for p in fs.ls(f"{bucket}/run/checkpoints")] == ["step-00000004", "step-00000008"]
    assert fs.isfile(f"{bucket}/run/final/model.safetensors")


@pytest.mark.slow
def test_torchrun_with_data_checkpoints_and_export_on_s3(small_build, torchrun_losses, s3_bucket, tmp_path):
    """data.path, checkpoint.folder and checkpoint.export_folder on moto's S3 server: torchrun's losses of a local
    run, checkpoints that verify and resume, an export that loads."""
    import s3fs

    bucket = s3_bucket.bucket
    fs = s3fs.S3FileSystem()
    fs.put(f"{small_build}/data/", f"{bucket}/small/data", recursive=True)
    run = f"s3://{bucket}/run"
    args = [f"data.path=s3://{bucket}/small", *RAY_COMMON, f"checkpoint.folder={run}/checkpoints",
            f"checkpoint.export_folder={run}/final", "checkpoint.interval=3", "checkpoint.keep_last=2",
            f"logging.folder={tmp_path}/log"]
    first = torchrun(args, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert read_losses(tmp_path / "log") == pytest.approx(torchrun_losses, rel=1e-6, abs=0)
    fs.invalidate_cache()
    assert [p.rsplit("/", 1)[-1] for p in fs.ls(f"{bucket}/run/checkpoints")] == ["step-00000006", "step-00000008"]
    assert fs.isfile(f"{bucket}/run/checkpoints/step-00000008/checksums.json")

    # Resume from step 6, as if the run had died before its last save.
    fs.rm(f"{bucket}/run/checkpoints/step-00000008", recursive=True)
    (tmp_path / "log" / "metrics.jsonl").unlink()
    again = torchrun(args, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resumed from {run}/checkpoints/step-00000006 at step 6" in again.stderr
    resumed = read_losses(tmp_path / "log")
    assert sorted(resumed) == [7, 8] and all(resumed[s] == pytest.approx(torchrun_losses[s], rel=1e-5) for s in (7, 8))

    from transformers import AutoModelForCausalLM

    fs.get(f"{bucket}/run/final/", str(tmp_path / "final"), recursive=True)
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "final").config.num_hidden_layers == 2


@pytest.mark.slow
def test_gpu_benchmark_runs_its_code_path_on_cpu():
    """The GPU benchmark on the committed rows, shrunk to a 2-layer model and 128 tokens so it runs here."""
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "benchmarks" / "bench_train_gpu.py"), "--small", "128",
         "--steps", "2", "--warmup", "1", "--modes", "eager"],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULTS "))
    (eager,) = json.loads(line.removeprefix("RESULTS "))
    assert eager["mode"] == "eager" and eager["tokens_per_s"] > 0 and eager["seq_len"] == 128
    assert 10 < eager["loss_first_last"][0] < 13  # about ln(128256) = 11.8 for a random init
