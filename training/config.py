"""The training configuration: dataclasses read from YAML, every field overridable on the command line.

    python -m training.train --config training/configs/tiny-llama-cpu.yaml --optimizer.lr 1e-5 training.steps=20

The file and the command line are checked by schemas.config against the fields' annotations (types, ranges,
choices) before anything starts; an error names the file or "command line" and the key, with close matches for a
misspelt key (`command line: training.stesp: unknown key; did you mean training.steps?`).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from schemas.config import STRICT_KEYS_NUMBERS_AS_TEXT, check, read_yaml, set_key
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
    __pydantic_config__ = STRICT_KEYS_NUMBERS_AS_TEXT

    # A Hugging Face model directory (config.json + safetensors) to fine-tune. Empty: random init from `config`.
    name_or_path: str = ""
    # Keyword arguments of a transformers config for a random-init model (tests, benchmarks), e.g.
    # {model_type: llama, hidden_size: 64, ...}. Used only when name_or_path is empty.
    config: dict = field(default_factory=dict)
    # Tokenizer (training.tokenizers.load_tokenizer): a folder, "llama3", or "gguf:<file>"; default name_or_path.
    tokenizer: str = ""
    # sdpa | flash_attention_2 | flex_attention | eager
    attn_implementation: Literal["sdpa", "flash_attention_2", "flex_attention", "eager"] = "sdpa"


@dataclass
class OptimizerConfig:
    __pydantic_config__ = STRICT_KEYS_NUMBERS_AS_TEXT

    lr: Annotated[float, Field(gt=0)] = 2e-5
    weight_decay: NonNegative = 0.0
    beta1: OpenFraction = 0.9
    beta2: OpenFraction = 0.95
    eps: Annotated[float, Field(gt=0)] = 1e-8
    # Fused AdamW kernels exist on CUDA only; "auto" uses them there.
    fused: Literal["auto", "true", "false"] = "auto"


@dataclass
class ScheduleConfig:
    __pydantic_config__ = STRICT_KEYS_NUMBERS_AS_TEXT

    warmup_steps: Count = 100
    # Cosine decay from lr to lr * min_lr_ratio over the steps after warm-up.
    min_lr_ratio: Fraction = 0.1


@dataclass
class TrainingConfig:
    __pydantic_config__ = STRICT_KEYS_NUMBERS_AS_TEXT

    steps: Positive = 1000
    seq_len: Positive = 2048
    micro_batch_size: Positive = 1
    # Micro-batches per optimizer step on each rank.
    grad_accumulation: Positive = 1
    max_grad_norm: NonNegative = 1.0  # 0: no clipping
    seed: Count = 0
    # bf16 on GPUs; fp32 on CPU (gloo has no bf16 reduction worth testing against).
    param_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    reduce_dtype: Literal["bfloat16", "float32"] = "float32"
    activation_checkpointing: bool = False
    compile: bool = False
    # "auto": cuda when available, else cpu (gloo).
    device: Literal["auto", "cuda", "cpu"] = "auto"
    # Optimizer steps with a NaN or infinite loss or gradient norm that are skipped (no update) before the run
    # stops; 0: the first one stops it. Nothing is saved or exported after a stop.
    max_nonfinite_steps: Count = 0


@dataclass
class CheckpointConfig:
    __pydantic_config__ = STRICT_KEYS_NUMBERS_AS_TEXT

    folder: str = ""
    # Save every N optimizer steps (0: only at the end).
    interval: Count = 0
    keep_last: Positive = 2
    resume: bool = True
    # Folder for the final model in Hugging Face format; empty: no export.
    export_folder: str = ""


@dataclass
class LoggingConfig:
    __pydantic_config__ = STRICT_KEYS_NUMBERS_AS_TEXT

    folder: str = ""
    every: Positive = 1
    tensorboard: bool = True
    progress_bar: bool = True
    # Peak bf16 FLOP/s of one device for MFU; 0: looked up from the device name.
    peak_flops: NonNegative = 0.0


@dataclass
class EvalConfig:
    # Translation quality (chrF++/BLEU) with training.evaluation.translation, every N steps and at the end (0: never).
    __pydantic_config__ = STRICT_KEYS_NUMBERS_AS_TEXT

    every: Count = 0
    at_end: bool = False
    max_pairs_per_direction: Positive = 50
    max_new_tokens: Positive = 128


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


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Instruction tuning with FSDP2. Settings follow as --section.key value or section.key=value.",
    )
    parser.add_argument("--config", required=True, help="YAML file (see training/configs/)")
    args, rest = parser.parse_known_args(argv)
    return load(args.config, rest)
