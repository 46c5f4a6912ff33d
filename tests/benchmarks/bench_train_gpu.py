"""Training throughput and MFU of a ~1B-parameter Llama on one GPU: FSDP2, bf16, packed real rows, seq len 4096.

Two steps, because the GPU machine has no tokenizer package and no internet:

    # here (CPU): tokenize real instruction rows with the Llama-3 tokenizer, pack them, write a few MB
    python tests/benchmarks/bench_train_gpu.py --prepare bench_rows.npz
    # on the GPU machine (torch, transformers, numpy, pyarrow, pyyaml only)
    python tests/benchmarks/bench_train_gpu.py --data bench_rows.npz

Without --data it runs on the rows committed next to it (train_rows_llama3_4096.npz, made by --prepare).

The model (training/configs/llama-1b-bench.yaml: hidden 2048, 16 layers, 32 heads, 8 KV heads, MLP 8192, vocab
128256: Llama-3.2-1B's shape with an untied output layer, 1.5B parameters) is randomly initialized. Each mode
builds it with training.parallelize (meta device, fully_shard per layer and root, bf16 parameters, fp32
reduction), then runs --warmup untimed and --steps timed optimizer steps with training.train's loss and fused
AdamW. Modes: `eager` and `compiled` (torch.compile per decoder layer) with sdpa and the block-diagonal causal
mask of training.packing.model_inputs; `compiled-flex` with flex attention and the block-sparse document mask
transformers builds from position_ids. MFU is torchtitan's: 6 x non-embedding parameters + 12 x layers x heads x
head_dim x seq_len FLOPs per token, over real (non-padding) tokens, against the device's dense bf16 peak; the
attention term counts the whole 4096 whatever the rows, as torchtitan does.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

# The model section of the 1B training config: one definition of the benchmark model.
CONFIG_1B = REPO_ROOT / "training" / "configs" / "llama-1b-bench.yaml"
INSTRUCTIONS = REPO_ROOT.parent / "shared" / "data" / "instructions"
# 60 sequences of 4096 tokens from the 1,233 rows of shared/data/instructions, written by --prepare (0.6 MiB).
ROWS = Path(__file__).with_name("train_rows_llama3_4096.npz")


def prepare(out: Path, files: list[Path], seq_len: int, max_sequences: int) -> None:
    """Real zh/en instruction rows -> the trainer's data path (Llama-3 format, packing) -> int arrays in a .npz."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from training.data import DataConfig, build_batches
    from training.tokenizers import load_tokenizer
    from training.train import real_tokens

    tokenizer = load_tokenizer("llama3")
    messages = []
    for path in files:
        with path.open(encoding="utf-8") as handle:
            messages += [json.loads(line)["messages"] for line in handle if line.strip()]
    arrays = {key: [] for key in ("input_ids", "labels", "position_ids")}
    real = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        pq.write_table(pa.table({"messages": messages}), f"{folder}/rows.parquet")
        batches = build_batches(
            DataConfig(path=f"{folder}/rows.parquet", chat_format="bayling-llama3", epochs=1),
            tokenizer, rank=0, world_size=1, seed=0, seq_len=seq_len, micro_batch_size=1,
        )
        for batch in batches:
            if len(real) == max_sequences:
                break
            for key in arrays:
                arrays[key].append(batch[key][0].numpy())
            real.append(real_tokens(batch, tokenizer.pad_token_id))
        stats = batches.stats()
    seconds = time.perf_counter() - started
    np.savez_compressed(
        out,
        input_ids=np.stack(arrays["input_ids"]).astype(np.int32),
        labels=np.stack(arrays["labels"]).astype(np.int32),
        position_ids=np.stack(arrays["position_ids"]).astype(np.int16),
        real_tokens=np.array(real, dtype=np.int32),
    )
    print(
        f"{len(messages)} rows, {stats['rows_read']} read, {stats['truncated']} truncated, "
        f"{stats['dropped_too_long'] + stats['dropped_no_trained_tokens']} dropped; {len(real)} sequences of "
        f"{seq_len} with {sum(real)} real tokens ({sum(real) / (len(real) * seq_len):.1%}), data path "
        f"{stats['real_tokens'] / seconds:,.0f} tokens/s on this CPU; wrote {out} "
        f"({out.stat().st_size / 2**20:.1f} MiB)"
    )


def run_mode(name: str, data: dict, args, mesh, device, weights: dict) -> dict:
    import torch

    from training import metrics
    from training.config import ModelConfig, OptimizerConfig
    from training.packing import model_inputs
    from training.parallelize import build_model, model_config
    from training.train import build_optimizer, loss_sum, trained_tokens

    torch._dynamo.reset()
    compiled = name.startswith("compiled")
    # "compiled-flex": flex attention with the block-sparse document mask (blocks across rows are skipped).
    attn = "flex_attention" if name.endswith("flex") else args.attn
    model_cfg = ModelConfig(config=dict(args.model), attn_implementation=attn)
    started = time.perf_counter()
    model = build_model(
        model_cfg, mesh, device, param_dtype="bfloat16", reduce_dtype="float32",
        activation_checkpointing=args.activation_checkpointing, compile=compiled, seed=0,
        full_state_dict=weights,
    )
    build_seconds = time.perf_counter() - started
    optimizer = build_optimizer(model, OptimizerConfig(lr=1e-5, fused="auto"), device)
    num_params, embedding_params = metrics.parameter_counts(model)
    seq_len = data["input_ids"].shape[1]
    flops = metrics.flops_per_token(model_config(model_cfg), num_params, embedding_params, seq_len)
    peak = metrics.peak_flops(device, args.peak_flops)

    n_sequences, b = data["input_ids"].shape[0], args.micro_batch_size
    cursor = 0

    def next_batch():
        nonlocal cursor
        index = [(cursor + i) % n_sequences for i in range(b)]
        cursor += b
        batch = {key: torch.from_numpy(data[key][index].astype(np.int64))
                 for key in ("input_ids", "labels", "position_ids")}
        # Counted on the CPU copy: no GPU synchronization inside the step.
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}, trained_tokens(batch), \
            int(data["real_tokens"][index].sum())

    def step():
        batch, trained, real = next_batch()
        inputs = model_inputs(batch, attn, torch.bfloat16)
        loss = loss_sum(model, batch, inputs) / max(trained, 1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss, real

    started = time.perf_counter()
    for _ in range(args.warmup):
        loss, _ = step()
    torch.cuda.synchronize(device) if device.type == "cuda" else None
    warmup_seconds = time.perf_counter() - started
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    real_tokens = 0
    losses = []
    for _ in range(args.steps):
        loss, real = step()
        real_tokens += real
        losses.append(loss.detach())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    tokens_per_s = real_tokens / seconds
    result = {
        "mode": name,
        "attention": attn,
        "params": num_params,
        "micro_batch_size": b,
        "seq_len": seq_len,
        "tokens_per_s": round(tokens_per_s),
        "mfu": round(tokens_per_s * flops / peak, 4) if peak else None,
        "step_s": round(seconds / args.steps, 3),
        "build_s": round(build_seconds, 1),
        "warmup_s": round(warmup_seconds, 1),
        "loss_first_last": [round(float(losses[0]), 3), round(float(losses[-1]), 3)],
        "flops_per_token": flops,
        "peak_flops": peak,
        **{k: round(v, 1) for k, v in metrics.memory_stats(device).items()},
    }
    del model, optimizer
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def bench(args) -> None:
    import torch

    from training.parallelize import init_distributed, resolve_device

    started = time.perf_counter()
    loaded = np.load(args.data)
    data = {key: loaded[key] for key in loaded.files}
    device = resolve_device("auto")
    if device.type != "cuda":
        print("warning: no GPU; running on CPU (only useful as a smoke test with --small)", file=sys.stderr)
    from training.config import load

    args.model = dict(load(CONFIG_1B).model.config)
    if args.small:  # a CPU smoke test of the same code path
        args.model.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2)
        data = {k: v[:, : args.small] if v.ndim == 2 else v for k, v in data.items()}
        data["real_tokens"] = np.minimum(data["real_tokens"], args.small)
    # 16 decoder layers share one compiled graph; leave room for recompiles rather than fall back to eager.
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    mesh = init_distributed(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, torch {torch.__version__}, {data['input_ids'].shape[0]} packed sequences of "
          f"{data['input_ids'].shape[1]}, packing efficiency "
          f"{data['real_tokens'].sum() / data['input_ids'].size:.1%}, start-up {time.perf_counter() - started:.0f} s",
          flush=True)
    from training.config import ModelConfig
    from training.parallelize import full_state_dict_on_rank0, model_config

    model_cfg = ModelConfig(config=dict(args.model))
    weights = full_state_dict_on_rank0(model_cfg, model_config(model_cfg), seed=0)  # once for all modes
    print(f"random init of {sum(v.numel() for v in weights.values()) / 1e9:.2f}B parameters on the CPU: "
          f"{time.perf_counter() - started:.0f} s since start", flush=True)
    results = []
    for mode in args.modes.split(","):
        result = None
        while result is None:
            out_of_memory = False
            try:
                result = run_mode(mode, data, args, mesh, device, weights)
            except torch.OutOfMemoryError:
                out_of_memory = True
            except Exception as error:  # one mode failing (a compiler error) must not hide the others' numbers
                print(f"{mode}: FAILED: {type(error).__name__}: {str(error)[:3000]}", flush=True)
            gc.collect()  # outside the except blocks: their tracebacks hold the failed model
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if not out_of_memory or args.micro_batch_size == 1:
                break
            args.micro_batch_size //= 2
            print(f"{mode}: out of memory, retrying with micro batch {args.micro_batch_size}", flush=True)
        if result is None:
            continue
        results.append(result)
        mfu = f"{result['mfu']:.1%}" if result["mfu"] is not None else "n/a"
        print(f"{mode:>13}: {result['tokens_per_s']:>9,} tokens/s  MFU {mfu}  ({result['step_s']} s/step, "
              f"micro batch {result['micro_batch_size']}x{result['seq_len']}, peak memory "
              f"{result.get('mem_max_allocated_gib', 'n/a')} GiB, build {result['build_s']} s, warm-up "
              f"{result['warmup_s']} s)", flush=True)
    print("RESULTS " + json.dumps(results))
    print(f"total {time.perf_counter() - started:.0f} s")
    torch.distributed.destroy_process_group()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepare", type=Path, help="write packed real rows to this .npz (CPU, needs llama-models)")
    parser.add_argument("--rows", type=Path, nargs="*",
                        help="instruction JSONL files (default: ../shared/data/instructions)")
    parser.add_argument("--sequences", type=int, default=64, help="packed sequences to write with --prepare")
    parser.add_argument("--seq-len", type=int, default=4096)
    parser.add_argument("--data", type=Path, help=f"the .npz from --prepare to run on (default {ROWS.name})")
    parser.add_argument("--modes", default="eager,compiled,compiled-flex", help="any of eager, compiled, compiled-flex")
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps per mode")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per mode (compilation happens here)")
    parser.add_argument("--micro-batch-size", type=int, default=4, help="halved and retried on out-of-memory")
    parser.add_argument("--attn", default="sdpa", help="attention of the eager and compiled modes (sdpa or eager)")
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--peak-flops", type=float, default=0.0, help="override the device's bf16 peak FLOP/s")
    parser.add_argument("--small", type=int, default=0, help="CPU smoke test: a 2-layer model on the first N tokens")
    args = parser.parse_args(argv)
    if args.prepare:
        files = args.rows or sorted(INSTRUCTIONS.glob("*.jsonl"))
        prepare(args.prepare, files, args.seq_len, args.sequences)
    if args.data or not args.prepare:
        args.data = args.data or ROWS
        bench(args)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    sys.exit(main())
