"""training/config.py's help: `python -m training.train --help` lists every config key with its default and meaning,
read from the dataclasses (defaults from the fields, meanings from their attribute docstrings); --print-config."""

import dataclasses
import subprocess
import sys

import pytest
import yaml

from schemas.config import field_docs
from training.config import Config, config_keys, from_dict, parse_args
from tests.conftest import REPO_ROOT

TINY = str(REPO_ROOT / "training" / "configs" / "tiny-llama-cpu.yaml")


def every_key(cls=Config, prefix=""):
    """The config's keys, walked here on their own, to check the help against."""
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory()):
            yield from every_key(type(f.default_factory()), f"{prefix}{f.name}.")
        else:
            yield prefix + f.name


def test_help_shows_every_key_with_its_default_and_meaning(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    keys = list(every_key())
    assert len(keys) > 40 and [key for key, _, _ in config_keys()] == keys
    for key, default, meaning in config_keys():
        assert meaning, f"{key} has no attribute docstring"
        shown = f"  {key} = "
        assert shown in text, key
        after = text.split(shown, 1)[1].split("\n")
        assert yaml.safe_load(after[0]) == default, key  # the default, as YAML
        assert " ".join(line.strip() for line in after[1:3]).startswith(meaning[:40]), key  # the meaning, under it
    for section in ("model", "data", "optimizer", "schedule", "training", "checkpoint", "logging", "eval"):
        assert f"\n{section}: " in text


@dataclasses.dataclass
class Planted:
    documented: int = 1
    """What it means."""
    undocumented: str = ""
    # a comment is not a meaning
    also: bool = False
    """Said
    over two lines."""


def test_meanings_are_the_attribute_docstrings():
    assert field_docs(Planted) == {"documented": "What it means.", "also": "Said over two lines."}
    assert [meaning for _, _, meaning in config_keys(Planted)] == ["What it means.", "", "Said over two lines."]


def test_print_config_shows_the_config_with_its_settings(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--config", TINY, "--print-config", "training.steps=3", "--optimizer.lr", "0.5"])
    assert exit_.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["training"]["steps"] == 3 and printed["optimizer"]["lr"] == 0.5
    assert from_dict(printed) == parse_args(["--config", TINY, "training.steps=3", "--optimizer.lr", "0.5"])


def test_the_command_shows_the_keys():
    result = subprocess.run([sys.executable, "-m", "training.train", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "  training.max_nonfinite_steps = 0" in result.stdout and "  data.path = ''" in result.stdout
