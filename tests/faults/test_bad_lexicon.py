"""A lexicon folder for `filters.lexical` that is missing a file or has a broken one stops the build before any
work starts, in one line naming the recipe key and the file (pipelines/lexicon.py load_lexicon)."""

from __future__ import annotations

import re
import shutil

import pytest

from pipelines.build import main
from pipelines.lexicon import LEXICON


def break_links(folder):
    (folder / "links.parquet").write_bytes(b"PAR1 not really parquet")


def drop_words(folder):
    (folder / "words.parquet").unlink()


def break_thresholds(folder):
    (folder / "thresholds.json").write_text('{"languages": {"deu_Latn": 4}', encoding="utf-8")


CASES = [
    ("links-not-parquet", break_links, r"filters\.lexical\.lexicon: .*links\.parquet: not a readable Parquet file"),
    ("words-missing", drop_words, r"filters\.lexical\.lexicon: .*: no words\.parquet; regenerate"),
    ("thresholds-truncated", break_thresholds, r"filters\.lexical\.lexicon: .*thresholds\.json: not a lexicon threshold table"),
]


@pytest.mark.parametrize("case, damage, pattern", CASES, ids=[case[0] for case in CASES])
def test_a_broken_lexicon_stops_the_build_in_one_line(tmp_path, capsys, case, damage, pattern):
    lexicon = tmp_path / "lexicon"
    shutil.copytree(LEXICON, lexicon)
    damage(lexicon)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"name: bad\nparallel: [{{type: udhr}}]\nfilters: {{lexical: {{lexicon: {lexicon}}}}}\n", encoding="utf-8")
    output = tmp_path / "out"
    code = main(["--recipe", str(recipe), "--langs", "deu_Latn", "--output", str(output), "--workers", "1", "--tasks", "1"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(lines) == 1, lines
    assert re.search(pattern, lines[0]), lines[0]
    assert str(recipe) in lines[0]
    assert not output.exists() and not output.with_name(f".{output.name}.partial").exists()
