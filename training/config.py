"""The training configuration: dataclasses read from YAML, every field overridable on the command line.

    python -m training.train --config training/configs/tiny-llama-cpu.yaml --optimizer.lr 1e-5 training.steps=20

A key that does not exist is an error that names it (with the file it came from) and suggests close matches.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from training.data import DataConfig  # the data section is defined with the data loader


class ConfigError(ValueError):
    pass


@dataclass
class ModelConfig:
    # A Hugging Face model directory (config.json + safetensors) to fine-tune. Empty: random init from `config`.
    name_or_path: str = ""
    # Keyword arguments of a transformers config for a random-init model (tests, benchmarks), e.g.
    # {model_type: llama, hidden_size: 64, ...}. Used only when name_or_path is empty.
    config: dict = field(default_factory=dict)
    # Tokenizer (training.tokenizers.load_tokenizer): a folder, "llama3", or "gguf:<file>"; default name_or_path.
    tokenizer: str = ""
    # sdpa | flash_attention_2 | flex_attention | eager
    attn_implementation: str = "sdpa"


@dataclass
class OptimizerConfig:
    lr: float = 2e-5
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    # Fused AdamW kernels exist on CUDA only; "auto" uses them there.
    fused: str = "auto"


@dataclass
class ScheduleConfig:
    warmup_steps: int = 100
    # Cosine decay from lr to lr * min_lr_ratio over the steps after warm-up.
    min_lr_ratio: float = 0.1


@dataclass
class TrainingConfig:
    steps: int = 1000
    seq_len: int = 2048
    micro_batch_size: int = 1
    # Micro-batches per optimizer step on each rank.
    grad_accumulation: int = 1
    max_grad_norm: float = 1.0
    # Optimizer steps with a NaN or infinite loss or gradient norm that are skipped (no update) before the run
    # stops; 0: the first one stops it. Nothing is saved or exported after a stop.
    max_nonfinite_steps: int = 0
    seed: int = 0
    # bf16 on GPUs; fp32 on CPU (gloo has no bf16 reduction worth testing against).
    param_dtype: str = "bfloat16"
    reduce_dtype: str = "float32"
    activation_checkpointing: bool = False
    compile: bool = False
    # "auto": cuda when available, else cpu (gloo).
    device: str = "auto"


@dataclass
class CheckpointConfig:
    folder: str = ""
    # Save every N optimizer steps (0: only at the end).
    interval: int = 0
    keep_last: int = 2
    resume: bool = True
    # Folder for the final model in Hugging Face format; empty: no export.
    export_folder: str = ""


@dataclass
class LoggingConfig:
    folder: str = ""
    every: int = 1
    tensorboard: bool = True
    progress_bar: bool = True
    # Peak bf16 FLOP/s of one device for MFU; 0: looked up from the device name.
    peak_flops: float = 0.0


@dataclass
class EvalConfig:
    # Translation quality (chrF++/BLEU) with training.translation_eval, every N steps and at the end (0: never).
    every: int = 0
    at_end: bool = False
    max_pairs_per_direction: int = 50
    max_new_tokens: int = 128


@dataclass
class Config:
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


def _suggest(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(close)}?" if close else f"; known keys: {', '.join(sorted(choices))}"


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, kind: Any, where: str) -> Any:
    """Checks (and for command-line strings converts) one value against the field's type."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~")):
            return None
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
        origin = typing.get_origin(kind)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if kind is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if kind is dict or origin is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return value
    return value


def _apply(config: Config, key: str, value: Any, source: str) -> None:
    parts = key.split(".")
    if len(parts) < 2:
        raise ConfigError(f"{source}: {key!r}: expected section.key{_suggest(key, _field_types(Config))}")
    section_name, *rest = parts
    sections = _field_types(Config)
    if section_name not in sections:
        raise ConfigError(f"{source}: {section_name!r}: unknown section{_suggest(section_name, sections)}")
    section = getattr(config, section_name)
    fields = _field_types(type(section))
    name = rest[0]
    if name not in fields:
        raise ConfigError(f"{source}: {section_name}.{name}: unknown key{_suggest(name, fields)}")
    where = f"{source}: {key}"
    if len(rest) > 1:  # model.config.hidden_size=64: one entry of a mapping field
        if fields[name] is not dict:
            raise ConfigError(f"{where}: {section_name}.{name} is not a mapping")
        mapping = dict(getattr(section, name))
        mapping[".".join(rest[1:])] = yaml.safe_load(value) if isinstance(value, str) else value
        setattr(section, name, mapping)
        return
    setattr(section, name, _coerce(value, fields[name], where))


def from_dict(data: dict, source: str = "config") -> Config:
    config = Config()
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    sections = _field_types(Config)
    for section_name, values in data.items():
        if section_name not in sections:
            raise ConfigError(f"{source}: {section_name!r}: unknown section{_suggest(str(section_name), sections)}")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: {section_name}: expected a mapping, got {values!r}")
        for name, value in values.items():
            _apply(config, f"{section_name}.{name}", value, source)
    validate(config, source)
    return config


def load(path: str | Path, overrides: list[str] = ()) -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    config = from_dict(data, str(path))
    for key, value in parse_overrides(overrides):
        _apply(config, key, value, "command line")
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


CHOICES = {
    ("model", "attn_implementation"): ("sdpa", "flash_attention_2", "flex_attention", "eager"),
    ("optimizer", "fused"): ("auto", "true", "false"),
    ("training", "param_dtype"): ("bfloat16", "float16", "float32"),
    ("training", "reduce_dtype"): ("bfloat16", "float32"),
    ("training", "device"): ("auto", "cuda", "cpu"),
}


def validate(config: Config, source: str) -> None:
    for (section, name), choices in CHOICES.items():
        value = getattr(getattr(config, section), name)
        if value not in choices:
            raise ConfigError(f"{source}: {section}.{name}: {value!r} is not one of {', '.join(choices)}")
    positive = [
        ("training", "seq_len"), ("training", "steps"), ("training", "micro_batch_size"),
        ("training", "grad_accumulation"), ("logging", "every"), ("checkpoint", "keep_last"),
    ]
    for section, name in positive:
        if getattr(getattr(config, section), name) < 1:
            raise ConfigError(f"{source}: {section}.{name}: must be at least 1")
    if config.training.max_nonfinite_steps < 0:
        raise ConfigError(f"{source}: training.max_nonfinite_steps: must be at least 0")
    if config.optimizer.lr <= 0:
        raise ConfigError(f"{source}: optimizer.lr: must be positive")
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
