"""Bad configuration is refused before any work starts, in one line naming the file (or option) and the key.

Each case is a recipe (or a training config) with one known bad value, and the line the build (or the trainer)
must stop with; the build runs for real (pipelines.build.main), and must leave no output behind.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pipelines import recipe as recipes
from pipelines.build import main
from training import config as training_config

UDHR = "name: bad\nparallel: [{type: udhr}]\n"


def table_source(path: Path, **keys) -> str:
    extra = "".join(f", {key}: {value}" for key, value in keys.items())
    return f"name: bad\nparallel: [{{type: tsv, path: {path}{extra}}}]\n"


def pairs_tsv(folder: Path, rows: int) -> Path:
    path = folder / "pairs.tsv"
    lines = ["src_text\ttgt_text\tsrc_lang\ttgt_lang"] + [f"Hallo {i}\tHello {i}\tdeu_Latn\teng_Latn" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# (id, recipe text from the folder's pairs.tsv, extra options, the error line's pattern: {recipe} is the recipe's path)
BUILD_CASES = [
    ("columns-not-a-mapping", lambda tsv: table_source(tsv, columns='"src_text"'), [],
     r"{recipe}: parallel\[0\]\.columns: expected a mapping, got 'src_text'"),
    ("unknown-src-lang", lambda tsv: table_source(tsv, src_lang="xxq_Zzzz", tgt_lang="eng_Latn"), [],
     r"{recipe}: parallel\[0\]\.src_lang: unknown language 'xxq' in code 'xxq_Zzzz'"),
    ("unknown-script", lambda tsv: table_source(tsv, src_lang="deu_Qqqq", tgt_lang="eng_Latn"), [],
     r"{recipe}: parallel\[0\]\.src_lang: unknown script 'Qqqq'"),
    ("negative-min-chars", lambda tsv: UDHR + "filters: {min_chars: -1}\n", [],
     r"{recipe}: filters\.min_chars: must be at least 0, got -1"),
    ("ratio-below-one", lambda tsv: UDHR + "filters: {max_length_ratio: 0.5}\n", [],
     r"{recipe}: filters\.max_length_ratio: must be at least 1\.0, got 0\.5"),
    # a reject margin is log(top-1 score / score of the language): at least langid.thresholds.FLOOR (1), and
    # below NEVER (99), which no float32 score ratio reaches
    ("threshold-below-floor", lambda tsv: UDHR + "langid: {threshold: 0.5}\n", [],
     r"{recipe}: langid\.threshold: must be at least 1\.0, got 0\.5"),
    ("threshold-unreachable", lambda tsv: UDHR + "langid: {threshold: 120}\n", [],
     r"{recipe}: langid\.threshold: must be at most 99\.0, got 120"),
    ("script-fraction-above-one", lambda tsv: UDHR + "langid: {min_script_fraction: 1.5}\n", [],
     r"{recipe}: langid\.min_script_fraction: must be at most 1\.0, got 1\.5"),
    ("misspelt-key", lambda tsv: UDHR + "filters: {lenght: {max_deviation: 3}}\n", [],
     r"{recipe}: filters\.lenght: unknown key; did you mean filters\.length\?"),
    ("unknown-language-listed", lambda tsv: UDHR + "languages: [deu_Latn, xxq_Zzzz]\n", [],
     r"{recipe}: languages\[1\]: unknown language 'xxq'"),
    ("empty-language-list", lambda tsv: UDHR + "languages: []\n", [], r"{recipe}: languages: an empty list"),
    ("max-length-ratio-option", lambda tsv: UDHR, ["--max-length-ratio", "-1"], r"--max-length-ratio: must be at least 1\.0, got -1\.0"),
    ("langid-threshold-option", lambda tsv: UDHR, ["--langid-threshold", "0"], r"--langid-threshold: must be at least 1\.0, got 0\.0"),
    ("empty-langs-option", lambda tsv: UDHR, ["--langs", ","], r"--langs: no language given in ','"),
    ("header-only-tsv", lambda tsv: table_source(pairs_tsv(tsv.parent, rows=0)), [],
     r"source tsv:pairs\.tsv: {folder}/pairs\.tsv has no rows"),
]


@pytest.mark.parametrize("case, recipe_text, options, pattern", BUILD_CASES, ids=[case[0] for case in BUILD_CASES])
def test_a_bad_recipe_or_option_stops_the_build_in_one_line(tmp_path, capsys, case, recipe_text, options, pattern):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(recipe_text(pairs_tsv(tmp_path, rows=3)), encoding="utf-8")
    output = tmp_path / "out"
    code = main(["--recipe", str(recipe), "--output", str(output), "--workers", "1", "--tasks", "1", *options])
    error = capsys.readouterr().err
    assert code != 0
    lines = error.strip().splitlines()
    assert len(lines) == 1, error
    expected = pattern.format(recipe=recipe, folder=tmp_path)
    assert re.search(expected, lines[0]), f"{lines[0]!r} does not match {expected!r}"
    assert not output.exists() and not output.with_name(f".{output.name}.partial").exists()


def test_a_reachable_margin_is_accepted(tmp_path):
    """7 is a margin the shipped calibrations give themselves (lid176's pooled ones reach 10.8): not refused."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(UDHR + "langid: {threshold: 7}\n", encoding="utf-8")
    assert recipes.load(str(recipe)).langid.threshold == 7.0


TINY = Path(__file__).resolve().parents[2] / "training" / "configs" / "tiny-llama-cpu.yaml"
TRAINING_CASES = [
    ("training:\n  stpes: 3\n", [], r"{config}: training\.stpes: unknown key; did you mean training\.steps\?"),
    ("optimizer:\n  lr: -1\n", [], r"{config}: optimizer\.lr: must be above 0\.0, got -1"),
    ("data:\n  chat_format: llama4\n", [], r"{config}: data\.chat_format: 'llama4' is not one of"),
    ("training:\n  max_nonfinite_steps: -2\n", [], r"{config}: training\.max_nonfinite_steps: must be at least 0, got -2"),
    ("", ["training.micro_batch_size=0"], r"command line: training\.micro_batch_size: must be at least 1, got '0'"),
    ("", ["--data.epochs", "0"], r"command line: data\.epochs: must be at least 1, got '0'"),
]


@pytest.mark.parametrize("extra, overrides, pattern", TRAINING_CASES)
def test_a_bad_training_config_is_refused_in_one_line(tmp_path, extra, overrides, pattern):
    data = yaml.safe_load(TINY.read_text(encoding="utf-8"))
    for section, values in (yaml.safe_load(extra) or {}).items():
        data[section] = {**data.get(section, {}), **values}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(training_config.ConfigError) as error:
        training_config.load(config, overrides)
    message = str(error.value)
    assert "\n" not in message
    assert re.search(pattern.format(config=config), message), message
