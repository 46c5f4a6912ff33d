"""The training loop: `torchrun --nproc_per_node N -m training.train --config x.yaml [section.key=value ...]`.

One optimizer step = `grad_accumulation` micro-batches on every rank. The loss is the sum of token losses over
all of them, divided by the number of trained tokens over all ranks and micro-batches (counted and all-reduced
before the first backward), so a step means the same whatever the number of ranks or the packing.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from training.config import Config, parse_args

IGNORE = -100


def next_token_targets(labels: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
    """The label each position predicts (the next token's), with no target across the boundary of two packed
    rows (where the next position restarts at 0) nor after the last position."""
    targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE)
    row_starts = F.pad(position_ids[:, 1:] == 0, (0, 1), value=True)
    return targets.masked_fill(row_starts, IGNORE)


def trained_tokens(batch: dict) -> int:
    return int((next_token_targets(batch["labels"], batch["position_ids"]) != IGNORE).sum())


def loss_sum(model, batch: dict, inputs: dict) -> torch.Tensor:
    """Sum (not mean) of the token cross-entropies of one micro-batch, in fp32."""
    logits = model(**inputs).logits
    targets = next_token_targets(batch["labels"], batch["position_ids"]).to(logits.device)
    return F.cross_entropy(
        logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE, reduction="sum"
    )


def forward_backward(model, micro_batches: list[dict], device, attn_implementation: str,
                     dtype: torch.dtype = torch.float32) -> tuple[float, int]:
    """Forward and backward of one optimizer step's micro-batches on this rank, the loss normalized by the
    trained tokens of all ranks and micro-batches. Returns (that loss over all ranks, the token count)."""
    from training.packing import model_inputs

    world_size = dist.get_world_size()
    count = torch.tensor(sum(trained_tokens(b) for b in micro_batches), dtype=torch.float64, device=device)
    dist.all_reduce(count)  # before the first backward: every micro-batch is scaled by the same global count
    global_tokens = int(count)
    step_loss = torch.zeros((), dtype=torch.float64, device=device)
    for batch in micro_batches:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        local = loss_sum(model, batch, model_inputs(batch, attn_implementation, dtype))
        # FSDP averages gradients over ranks, hence * world_size: the result is sum / global_tokens.
        (local * (world_size / max(global_tokens, 1))).backward()
        step_loss += local.detach().double()
    dist.all_reduce(step_loss)
    return float(step_loss) / max(global_tokens, 1), global_tokens


def build_optimizer(model, cfg, device: torch.device) -> torch.optim.Optimizer:
    fused = {"auto": device.type == "cuda", "true": True, "false": False}[cfg.fused]
    return torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
        weight_decay=cfg.weight_decay, fused=fused, foreach=None if fused else True,
    )


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Linear warm-up to 1, then cosine decay to min_lr_ratio at total_steps. `step` counts from 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / decay_steps, 1.0)
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(optimizer, schedule_cfg, total_steps: int):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_factor(step, schedule_cfg.warmup_steps, total_steps, schedule_cfg.min_lr_ratio),
    )


def clip_grad_norm(model, max_norm: float) -> float:
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm if max_norm > 0 else float("inf"))
    if hasattr(norm, "full_tensor"):  # a DTensor: the norm over all shards
        norm = norm.full_tensor()
    return float(norm)


def load_tokenizer(model_cfg):
    from training.tokenizers import load_tokenizer as load

    spec = model_cfg.tokenizer or model_cfg.name_or_path
    if not spec:
        raise ValueError("model.tokenizer: a random-init model needs a tokenizer (a folder, llama3, gguf:<file>)")
    return load(spec)


def real_tokens(batch: dict, pad_id: int) -> int:
    """Tokens of real rows: all positions but the padding row that collate puts at the end of a sequence."""
    total = 0
    for ids, positions in zip(batch["input_ids"], batch["position_ids"]):
        last_start = int((positions == 0).nonzero()[-1])
        padding = bool((ids[last_start:] == pad_id).all())
        total += last_start if padding else len(ids)
    return total


def global_data_stats(batches, device, seq_len: int) -> dict:
    """The data counts (rows read, truncated, dropped, tokens...) summed over ranks; every rank calls this."""
    stats = batches.stats()
    keys = sorted(k for k, v in stats.items() if isinstance(v, int) and not isinstance(v, bool) and k != "epoch")
    totals = torch.tensor([stats[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    result = {f"data/{k}": int(v) for k, v in zip(keys, totals.tolist())}
    slots = result.get("data/sequences", 0) * seq_len
    if slots:
        result["data/packing_efficiency"] = result.get("data/real_tokens", 0) / slots
    return result


class NonFiniteGuard:
    """Stops the run at an optimizer step whose loss or gradient norm is NaN or infinite on any rank, or, with
    `limit` > 0, skips the update of up to `limit` such steps and stops at the next one."""

    def __init__(self, limit: int, device: torch.device, skipped: int = 0):
        self.limit, self.device, self.skipped = limit, device, skipped

    def skip(self, step: int, loss: float, grad_norm: float) -> bool:
        """True when this step's update must be skipped; NonFiniteError when the run must stop. Every rank calls
        this with its own values and all get the same answer."""
        from training.checkpoint import NonFiniteError

        flag = torch.tensor(0.0 if math.isfinite(loss) and math.isfinite(grad_norm) else 1.0, device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if not flag.item():
            return False
        self.skipped += 1
        what = f"step {step}: loss {loss}, gradient norm {grad_norm}"
        if self.skipped > self.limit:
            raise NonFiniteError(
                f"{what}: not finite ({self.skipped} such steps, training.max_nonfinite_steps is {self.limit}); "
                "stopped: nothing saved or exported after the last checkpoint"
            )
        if dist.get_rank() == 0:
            print(f"warning: {what}: not finite: update skipped ({self.skipped} of at most {self.limit})",
                  file=sys.stderr)
        return True


def update(model, optimizer, scheduler, guard: NonFiniteGuard, step: int, loss: float,
           max_grad_norm: float) -> tuple[float, bool]:
    """Clips the gradients and applies them, unless the guard skips this step; the schedule advances either way
    (the step's data was used). Returns (the gradient norm before clipping, whether the update was skipped)."""
    grad_norm = clip_grad_norm(model, max_grad_norm)
    skipped = guard.skip(step, loss, grad_norm)
    if not skipped:
        optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm, skipped


def resume(config: Config, model, optimizer, scheduler, batches) -> tuple[int, dict]:
    """Loads the newest verified checkpoint when resuming; returns (its step, its counters), or (0, {})."""
    from training import checkpoint

    if not (config.checkpoint.folder and config.checkpoint.resume):
        return 0, {}
    found = checkpoint.latest_verified(config.checkpoint.folder)
    if found is None:
        return 0, {}
    extra = checkpoint.load(found, model, optimizer, scheduler)
    batches.load_state_dict(extra["data"])
    if dist.get_rank() == 0:
        print(f"resumed from {found} at step {extra['step']}", file=sys.stderr)
    return extra["step"], extra.get("counters", {})


@dataclass
class TrainingRun:
    """What one rank's training holds while it runs: the model and its optimizer, the data, the counters."""

    config: Config
    device: torch.device
    rank: int
    tokenizer: Any
    model: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    batches: Any
    guard: NonFiniteGuard
    throughput: Any
    logger: Any
    step: int
    saved_step: int


def train(config: Config) -> dict:
    """Runs the training described by `config` in this process (one rank). Returns the final metrics; the
    per-step ones are in logging.folder/metrics.jsonl."""
    run = start_run(config)
    last: dict = {}
    try:
        while run.step < config.training.steps:
            micro_batches = next_micro_batches(run.batches, config.training.grad_accumulation)
            exhausted, global_real_tokens = out_of_data(run, micro_batches)
            if exhausted:
                if run.rank == 0:
                    print(f"data exhausted after {run.step} steps", file=sys.stderr)
                break
            last = train_step(run, micro_batches, global_real_tokens) or last
            if config.checkpoint.folder and config.checkpoint.interval and run.step % config.checkpoint.interval == 0:
                save_checkpoint(run)
            if config.eval.every and run.step % config.eval.every == 0:
                evaluate(config, run.model, run.tokenizer, run.step, run.logger)
        finish(run)
    finally:
        run.logger.close()
    return {"step": run.step, **last}


def start_run(config: Config) -> TrainingRun:
    """Sets up this rank: the process group, the sharded model, its optimizer and schedule, the data, and the
    state of the newest checkpoint when resuming."""
    from training import metrics
    from training.data import build_batches
    from training.parallelize import build_model, init_distributed, model_config, resolve_device

    device = resolve_device(config.training.device)
    mesh = init_distributed(device)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(config.training.seed)
    tcfg = config.training

    tokenizer = load_tokenizer(config.model)
    model = build_model(
        config.model, mesh, device, param_dtype=tcfg.param_dtype, reduce_dtype=tcfg.reduce_dtype,
        activation_checkpointing=tcfg.activation_checkpointing, compile=tcfg.compile, seed=tcfg.seed,
    )
    model.train()
    optimizer = build_optimizer(model, config.optimizer, device)
    scheduler = build_scheduler(optimizer, config.schedule, tcfg.steps)
    batches = build_batches(
        config.data, tokenizer, rank, world_size, tcfg.seed, tcfg.seq_len, tcfg.micro_batch_size
    )

    step, counters = resume(config, model, optimizer, scheduler, batches)
    guard = NonFiniteGuard(tcfg.max_nonfinite_steps, device, counters.get("nonfinite_steps", 0))

    num_params, embedding_params = metrics.parameter_counts(model)
    flops = metrics.flops_per_token(model_config(config.model), num_params, embedding_params, tcfg.seq_len)
    throughput = metrics.Throughput(flops, metrics.peak_flops(device, config.logging.peak_flops), world_size)
    logger = metrics.MetricsLogger(
        config.logging.folder, total_steps=tcfg.steps, start_step=step, enabled=rank == 0,
        tensorboard=config.logging.tensorboard, progress_bar=config.logging.progress_bar,
    )
    # The checkpoint resumed from is never saved over: a crash then would lose it.
    return TrainingRun(config, device, rank, tokenizer, model, optimizer, scheduler, batches, guard, throughput,
                       logger, step=step, saved_step=step)


def next_micro_batches(batches, count: int) -> list[dict]:
    """Up to `count` micro-batches; fewer when this rank's data runs out."""
    micro_batches = []
    for _ in range(count):
        batch = next(batches, None)
        if batch is None:
            break
        micro_batches.append(batch)
    return micro_batches


def out_of_data(run: TrainingRun, micro_batches: list[dict]) -> tuple[bool, float]:
    """(whether any rank ran out of data, the real tokens of this step over all ranks). "Out of data" goes
    through an all-reduce so that every rank stops at the same step."""
    flags = torch.tensor([len(micro_batches) < run.config.training.grad_accumulation,
                          sum(real_tokens(b, run.batches.pad_id) for b in micro_batches)],
                         dtype=torch.float64, device=run.device)
    dist.all_reduce(flags)
    exhausted, global_real_tokens = flags.tolist()
    return bool(exhausted), global_real_tokens


def train_step(run: TrainingRun, micro_batches: list[dict], global_real_tokens: float) -> dict | None:
    """One optimizer step; returns its metrics on the steps that log them (already logged), else None."""
    from training import metrics
    from training.parallelize import DTYPES

    config, tcfg = run.config, run.config.training
    loss, global_tokens = forward_backward(
        run.model, micro_batches, run.device, config.model.attn_implementation, DTYPES[tcfg.param_dtype]
    )
    lr = run.scheduler.get_last_lr()[0]
    grad_norm, skipped = update(run.model, run.optimizer, run.scheduler, run.guard, run.step + 1, loss,
                                tcfg.max_grad_norm)
    run.step += 1
    run.throughput.add(int(global_real_tokens))
    run.logger.advance()
    if not (run.step % config.logging.every == 0 or run.step == tcfg.steps):
        return None
    logged = {
        "loss": loss, "lr": lr, "grad_norm": grad_norm, "nonfinite_steps": run.guard.skipped,
        "trained_tokens": int(global_tokens), **run.throughput.read(), **metrics.memory_stats(run.device),
    }
    if skipped:  # no NaN in metrics.jsonl, which stays strict JSON
        del logged["loss"], logged["grad_norm"]
    logged.update(global_data_stats(run.batches, run.device, tcfg.seq_len))
    run.logger.log(run.step, logged)
    return logged


def save_checkpoint(run: TrainingRun) -> None:
    from training import checkpoint

    checkpoint.save(run.config.checkpoint.folder, run.step, run.model, run.optimizer, run.scheduler,
                    run.batches.state_dict(), run.config.checkpoint.keep_last, {"nonfinite_steps": run.guard.skipped})
    run.saved_step = run.step


def finish(run: TrainingRun) -> None:
    """After the last step: the final checkpoint (unless that step is saved already), the final evaluation and
    the export."""
    from training import checkpoint

    config = run.config
    if config.checkpoint.folder and run.step != run.saved_step:
        save_checkpoint(run)
    if config.eval.at_end:
        evaluate(config, run.model, run.tokenizer, run.step, run.logger)
    if config.checkpoint.export_folder:
        dtype = {"float32": torch.float32}.get(config.training.param_dtype, torch.bfloat16)
        checkpoint.export_hf(run.model, config.checkpoint.export_folder, run.tokenizer, dtype=dtype)


def evaluate(config: Config, model, tokenizer, step: int, logger) -> None:
    """Translation quality on held-out pairs (training.evaluation.translation), prompted in the chat format the model
    is trained on, logged like the training metrics. Every rank generates the same prompts: the sharded model's
    forward is a collective, so all ranks run the same number of them."""
    from training.evaluation.translation import evaluate_translation

    model.eval()
    with torch.no_grad():
        scores = evaluate_translation(
            model, tokenizer, prompt_format=config.data.chat_format,
            max_pairs_per_direction=config.eval.max_pairs_per_direction, max_new_tokens=config.eval.max_new_tokens,
        )
    model.train()
    logger.log(step, {f"eval/{k}": v for k, v in scores.items() if isinstance(v, (int, float))})


def main(argv: list[str] | None = None) -> int:
    from training.checkpoint import NonFiniteError
    from training.config import ConfigError

    try:
        config = parse_args(argv)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    try:
        result = train(config)
        if dist.get_rank() == 0:
            print(f"done: {result} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    except ValueError as error:  # bad input found while starting: a data file, a row, a tokenizer, a checkpoint
        print(f"error: {error}", file=sys.stderr)
        return 2
    except NonFiniteError as error:  # diverged, or resumed from bad weights: the checkpoints are left as they were
        print(f"error: {error}", file=sys.stderr)
        return 3
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
