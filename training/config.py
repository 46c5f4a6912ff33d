"""The training configuration: dataclasses read from YAML, every field overridable on the command line.

    python -m training.train --config training/configs/tiny-llama-cpu.yaml --optimizer.lr 1e-5 training.steps=20

The file and the command line are checked by schemas.config against the fields' annotations (types, ranges,
choices) before anything starts; an error names the file or "command line" and the key, with close matches for a
misspelt key (`command line: training.stesp: unknown key; did you mean training.steps?`).
"""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from pydantic import Field

from schemas.config import STRICT_KEYS_NUMBERS_AS_TEXT, check, field_docs, read_yaml, set_key
from schemas.config import ConfigError as BaseConfigError
from training.data import DataConfig  # the data section is defined with the data loader

Count = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]
NonNegative = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
OpenFraction = Annotated[float, Field(ge=0, lt=1)]  # an Adam beta: 1 would never forget


class ConfigError(BaseConfigError):
    pass


@dataclass
class ModelConfig:
    """The model to tune and its tokenizer."""

    __pydantic_config__ = STRICT_KEYS_NUMBERS_AS_TEXT

    name_or_path: str = ""
    """A Hugging Face model folder (config.json + safetensors) to fine-tune; empty: random init from `config`."""
    config: dict = field(default_factory=dict)
    """transformers config keys of a random-init model (tests, benchmarks), e.g. {model_type: llama, hidden_size:
    64}; used only when name_or_path is empty."""
    tokenizer: str = ""
    """training.tokenizers.load_tokenizer spec: a folder, a cached Hub id, llama3, llama3:<path>/tokenizer.model,
    gguf:<file>, gguf:smollm2; empty: the model's."""
    attn_implementation: Literal["sdpa", "flash_attention_2", "flex_attention", "eager"] = "sdpa"
    """Attention kernel: sdpa, flash_attention_2, flex_attention or eager."""


@dataclass
class OptimizerConfig:
    """AdamW."""

    __pydantic_config__ = STRICT_KEYS_NUMBERS_AS_TEXT

    lr: Annotated[float, Field(gt=0)] = 2e-5
    """Peak learning rate (after warm-up)."""
    weight_decay: NonNegative = 0.0
    """Decoupled weight decay."""
    beta1: OpenFraction = 0.9
    """Adam's first-moment decay."""
    beta2: OpenFraction = 0.95
    """Adam's second-moment decay."""
    eps: Annotated[float, Field(gt=0)] = 1e-8
    """Adam's epsilon."""
    fused: Literal["auto", "true", "false"] = "auto"
    """Fused AdamW kernels, which exist on CUDA only; auto: on CUDA."""


@dataclass
class ScheduleConfig:
    """The learning-rate schedule: linear warm-up, then cosine decay."""

    __pydantic_config__ = STRICT_KEYS_NUMBERS_AS_TEXT

    warmup_steps: Count = 100
    """Optimizer steps of linear warm-up from 0 to lr."""
    min_lr_ratio: Fraction = 0.1
    """Cosine decay from lr to lr * min_lr_ratio over the steps after warm-up."""


@dataclass
class TrainingConfig:
    """The run: its length, batch, precision and device."""

    __pydantic_config__ = STRICT_KEYS_NUMBERS_AS_TEXT

    steps: Positive = 1000
    """Optimizer steps of the run."""
    seq_len: Positive = 2048
    """Tokens per packed sequence."""
    micro_batch_size: Positive = 1
    """Packed sequences per forward pass on each rank."""
    grad_accumulation: Positive = 1
    """Micro-batches per optimizer step on each rank."""
    max_grad_norm: NonNegative = 1.0
    """Gradient-norm clipping; 0: no clipping."""
    seed: Count = 0
    """Seed of the weights' random init and of the data order."""
    param_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    """Parameter dtype of FSDP's compute: bf16 on GPUs; fp32 on CPU (gloo has no bf16 reduction worth testing)."""
    reduce_dtype: Literal["bfloat16", "float32"] = "float32"
    """Dtype of the gradient reduction."""
    activation_checkpointing: bool = False
    """Recompute each decoder layer's activations in the backward pass (less memory, more compute)."""
    compile: bool = False
    """torch.compile each decoder layer."""
    device: Literal["auto", "cuda", "cpu"] = "auto"
    """auto: cuda when available, else cpu (gloo)."""
    max_nonfinite_steps: Count = 0
    """Optimizer steps with a NaN or infinite loss or gradient norm that are skipped (no update) before the run
    stops; 0: the first one stops it. Nothing is saved or exported after a stop."""


@dataclass
class CheckpointConfig:
    """Checkpoints (step-NNNNNNNN/ folders) and the final export."""

    __pydantic_config__ = STRICT_KEYS_NUMBERS_AS_TEXT

    folder: str = ""
    """Where checkpoints go; empty: none are saved."""
    interval: Count = 0
    """Save every N optimizer steps; 0: only at the end."""
    keep_last: Positive = 2
    """Checkpoints kept; older ones are deleted."""
    resume: bool = True
    """Resume from the newest checkpoint in folder that verifies."""
    export_folder: str = ""
    """Folder for the final model in Hugging Face format; empty: no export."""


@dataclass
class LoggingConfig:
    """Metrics: metrics.jsonl, TensorBoard and the progress bar."""

    __pydantic_config__ = STRICT_KEYS_NUMBERS_AS_TEXT

    folder: str = ""
    """Where metrics.jsonl (and TensorBoard events) go; empty: no files."""
    every: Positive = 1
    """Log every N optimizer steps."""
    tensorboard: bool = True
    """Write TensorBoard events too, when tensorboard is installed."""
    progress_bar: bool = True
    """A progress bar of the run (loss, learning rate, tokens/s) on rank 0."""
    peak_flops: NonNegative = 0.0
    """Peak bf16 FLOP/s of one device, for MFU; 0: looked up from the device name."""


@dataclass
class EvalConfig:
    """Translation quality (chrF++/BLEU) with training.evaluation.translation during the run."""

    __pydantic_config__ = STRICT_KEYS_NUMBERS_AS_TEXT

    every: Count = 0
    """Evaluate every N optimizer steps; 0: never."""
    at_end: bool = False
    """Evaluate once the run ends."""
    max_pairs_per_direction: Positive = 50
    """Held-out pairs per translation direction."""
    max_new_tokens: Positive = 128
    """Longest generated translation, in tokens."""


@dataclass
class Config:
    __pydantic_config__ = STRICT_KEYS_NUMBERS_AS_TEXT

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def from_dict(data: dict, source: str = "config") -> Config:
    """A config from its sections (a YAML file's data), checked whole."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    config = check(Config, {name: values for name, values in data.items() if values is not None}, source, error=ConfigError)
    validate(config, source)
    return config


def load(path: str | Path, overrides: list[str] = ()) -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    config = from_dict(read_yaml(path, ConfigError) or {}, str(path))
    for key, value in parse_overrides(overrides):
        if "." not in key:
            raise ConfigError(f"command line: {key!r}: expected section.key")
        set_key(config, key, value, "command line", ConfigError, text=True)
    validate(config, "command line" if overrides else str(path))
    return config


def parse_overrides(args: list[str]) -> list[tuple[str, str]]:
    """`--section.key value`, `--section.key=value` and `section.key=value`, in order."""
    pairs, i = [], 0
    args = list(args)
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            body = arg[2:]
            if "=" in body:
                key, value = body.split("=", 1)
            else:
                if i + 1 >= len(args):
                    raise ConfigError(f"command line: {arg} needs a value")
                key, value = body, args[i + 1]
                i += 1
        elif "=" in arg:
            key, value = arg.split("=", 1)
        else:
            raise ConfigError(f"command line: {arg!r}: expected --section.key value or section.key=value")
        pairs.append((key, value))
        i += 1
    return pairs


def validate(config: Config, source: str) -> None:
    """What a complete config needs beyond its values' types and ranges (those are checked as they are read)."""
    try:
        config.data.validate()
    except ValueError as error:
        raise ConfigError(f"{source}: {error}") from None
    if not config.model.name_or_path and not config.model.config:
        raise ConfigError(f"{source}: model: give name_or_path (a model folder) or config (a random-init model)")


def config_keys(cls=Config, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(key, default, meaning) of every config key, in the dataclasses' order: defaults from the fields, meanings
    from their attribute docstrings (schemas.config.field_docs). A section (a dataclass field) gives its keys."""
    keys = []
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            keys += config_keys(type(default), f"{prefix}{f.name}.")
        else:
            keys.append((prefix + f.name, default, docs.get(f.name, "")))
    return keys


def keys_help() -> str:
    """Every config key with its default and meaning, by section, for --help."""
    lines = ["config keys (set in the YAML file, or after it as --section.key value or section.key=value):"]
    for section in dataclasses.fields(Config):
        cls = type(section.default_factory())
        lines += ["", f"{section.name}: {cls.__doc__.split(chr(10))[0]}"]
        for key, default, meaning in config_keys(cls, f"{section.name}."):
            shown = yaml.safe_dump(default, default_flow_style=True, width=1000).removesuffix("...\n").strip()
            lines.append(f"  {key} = {shown}")
            lines += textwrap.wrap(meaning, 100, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Instruction tuning with FSDP2. Settings follow as --section.key value or section.key=value.",
        epilog=keys_help(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, help="YAML file (see training/configs/)")
    parser.add_argument("--print-config", action="store_true", help="print the config the run would use (the file and the settings after it) and exit")
    args, rest = parser.parse_known_args(argv)
    config = load(args.config, rest)
    if args.print_config:
        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        raise SystemExit(0)
    return config
