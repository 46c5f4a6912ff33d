"""What a training run reports: loss, learning rate, tokens/s, MFU, memory; to a progress bar, JSONL, TensorBoard."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from torch import nn

# Dense bf16 peak FLOP/s (no sparsity) by device name, for MFU.
PEAK_BF16_FLOPS = {
    "H200": 989e12,
    "H100 SXM": 989e12,
    "H100 80GB HBM3": 989e12,
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "H100": 989e12,
    "H20": 148e12,
    "B200": 2250e12,
    "GH200": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 70e12,
}


def peak_flops(device: torch.device, override: float = 0.0) -> float:
    """Peak bf16 FLOP/s of one device; 0 when unknown (CPU), so MFU is left out rather than made up."""
    if override:
        return override
    if device.type != "cuda":
        return 0.0
    name = torch.cuda.get_device_name(device)
    for key, flops in PEAK_BF16_FLOPS.items():
        if key in name:
            return flops
    return 0.0


def flops_per_token(config, num_params: int, embedding_params: int, seq_len: int) -> float:
    """torchtitan's estimate: 6 FLOPs per non-embedding parameter (forward + backward) plus the attention
    scores and values, 12 * layers * heads * head_dim * seq_len. The output projection counts as a matmul;
    only the input embedding (a lookup) is left out."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    attention = 12 * config.num_hidden_layers * config.num_attention_heads * head_dim * seq_len
    return 6 * (num_params - embedding_params) + attention


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(all parameters, input-embedding parameters), counting a tied output projection once more as compute."""
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    output = model.get_output_embeddings()
    if output is not None and output.weight is model.get_input_embeddings().weight:
        total += embedding  # tied: the lm_head matmul still costs its FLOPs
    return total, embedding


def memory_stats(device: torch.device) -> dict:
    if device.type != "cuda":
        return {}
    return {
        "mem_max_allocated_gib": torch.cuda.max_memory_allocated(device) / 2**30,
        "mem_max_reserved_gib": torch.cuda.max_memory_reserved(device) / 2**30,
    }


class Throughput:
    """Tokens/s and MFU over the steps since the last call, from real (non-padding) tokens across all ranks."""

    def __init__(self, flops_per_token: float, peak_flops_per_device: float, world_size: int):
        self.flops_per_token = flops_per_token
        self.peak = peak_flops_per_device * world_size
        self.tokens = 0
        self.start = time.perf_counter()

    def add(self, tokens: int) -> None:
        self.tokens += tokens

    def read(self) -> dict:
        now = time.perf_counter()
        seconds = max(now - self.start, 1e-9)
        tokens_per_s = self.tokens / seconds
        result = {"tokens_per_s": tokens_per_s}
        if self.peak:
            result["mfu"] = tokens_per_s * self.flops_per_token / self.peak
        self.tokens, self.start = 0, now
        return result


class MetricsLogger:
    """Rank 0 writes metrics.jsonl (one object per logged step), TensorBoard events when tensorboard is
    installed and asked for, and a tqdm progress bar; other ranks write nothing."""

    def __init__(self, folder: str, *, total_steps: int, start_step: int = 0, enabled: bool = True,
                 tensorboard: bool = True, progress_bar: bool = True):
        self.enabled = enabled
        self.jsonl = None
        self.writer = None
        self.bar = None
        if not enabled:
            return
        if folder:
            path = Path(folder)
            path.mkdir(parents=True, exist_ok=True)
            self.jsonl = (path / "metrics.jsonl").open("a", encoding="utf-8")
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:  # tensorboard is optional
                    SummaryWriter = None
                if SummaryWriter is not None:
                    self.writer = SummaryWriter(str(path / "tensorboard"))
        if progress_bar:
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True)

    def log(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        if self.jsonl:
            self.jsonl.write(json.dumps({"step": step, **values}) + "\n")
            self.jsonl.flush()
        if self.writer:
            for key, value in values.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, step)
        if self.bar:
            shown = {k: values[k] for k in ("loss", "lr", "tokens_per_s", "mfu") if k in values}
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()}, refresh=False)

    def advance(self) -> None:
        if self.bar:
            self.bar.update(1)

    def close(self) -> None:
        if self.jsonl:
            self.jsonl.close()
        if self.writer:
            self.writer.close()
        if self.bar:
            self.bar.close()
