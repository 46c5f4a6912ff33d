import json
import re
from pathlib import Path

import pytest

from pipelines import recipe as recipes
from pipelines.build import parse_args
from pipelines.options import BuildOptions, apply_overrides
from pipelines.sources import HubSource, TableSource, UdhrSource


def write(tmp_path, text: str):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return str(path)


def test_shipped_recipes_load():
    embedded = recipes.load("embedded")
    assert isinstance(embedded.parallel[0], UdhrSource) and embedded.mixture is None
    bayling2 = recipes.load("bayling2")
    assert bayling2.mixture.total == 3_200_000
    assert bayling2.mixture.shares == {"zh": 0.432, "en": 0.262, "cross_lingual": 0.306}
    assert any(isinstance(s, HubSource) and s.repo == "Helsinki-NLP/opus-100" for s in bayling2.parallel)


def test_a_misspelt_key_is_named_with_a_suggestion(tmp_path):
    with pytest.raises(recipes.RecipeError, match=r"r.yaml: mixtur: unknown key; did you mean mixture\?$"):
        recipes.load(write(tmp_path, "name: x\nparallel: [{type: udhr}]\nmixtur: {total: 5}\n"))


def test_nested_errors_name_the_key_path(tmp_path):
    with pytest.raises(recipes.RecipeError, match=r"parallel\[1\].type: unknown source type 'csv'; did you mean tsv\?"):
        recipes.load(write(tmp_path, "name: x\nparallel: [{type: udhr}, {type: csv, path: a.csv}]\n"))
    with pytest.raises(recipes.RecipeError, match=r"parallel\[0\].colums: unknown key; did you mean parallel\[0\].columns\?"):
        recipes.load(write(tmp_path, "name: x\nparallel: [{type: tsv, path: a.tsv, colums: {}}]\n"))
    with pytest.raises(recipes.RecipeError, match=r"filters.max_length_ratio: expected a number, got 'lots'"):
        recipes.load(write(tmp_path, "name: x\nparallel: [{type: udhr}]\nfilters: {max_length_ratio: lots}\n"))
    with pytest.raises(recipes.RecipeError, match=r"mixture.shares: shares must add up to 1"):
        recipes.load(write(tmp_path, "name: x\nparallel: [{type: udhr}]\nmixture: {shares: {zh: 0.5, en: 0.6}}\n"))
    with pytest.raises(recipes.RecipeError, match=r"r.yaml: name: missing"):
        recipes.load(write(tmp_path, "parallel: [{type: udhr}]\n"))


def test_near_dedup_and_template_settings_are_checked(tmp_path):
    bayling2 = recipes.load("bayling2")
    assert bayling2.dedup.near.enabled and bayling2.templates.document > 0 and bayling2.templates.dialogue > 0
    assert recipes.load("embedded").templates.document == 0  # every pair, two sentence instructions
    with pytest.raises(recipes.RecipeError, match=r"dedup.near.ngrams: unknown key; did you mean dedup.near.ngram\?"):
        recipes.load(write(tmp_path, "name: x\nparallel: [{type: udhr}]\ndedup: {near: {ngrams: 3}}\n"))
    with pytest.raises(recipes.RecipeError, match=r"dedup.near.num_buckets: must be at least 1"):
        recipes.load(write(tmp_path, "name: x\nparallel: [{type: udhr}]\ndedup: {near: {num_buckets: 0}}\n"))
    with pytest.raises(recipes.RecipeError, match=r"dedup.near.enabled: expected true or false, got 'sometimes'"):
        recipes.load(write(tmp_path, "name: x\nparallel: [{type: udhr}]\ndedup: {near: {enabled: sometimes}}\n"))
    with pytest.raises(recipes.RecipeError, match=r"templates.segments: expected \[fewest, most\] with 2 <= fewest <= most"):
        recipes.load(write(tmp_path, "name: x\nparallel: [{type: udhr}]\ntemplates: {segments: [3, 2]}\n"))
    with pytest.raises(recipes.RecipeError, match=r"templates.document: must be at least 0"):
        recipes.load(write(tmp_path, "name: x\nparallel: [{type: udhr}]\ntemplates: {sentence: 0, document: -1}\n"))
    with pytest.raises(recipes.RecipeError, match=r"templates.dialog: unknown key; did you mean templates.dialogue\?"):
        recipes.load(write(tmp_path, "name: x\nparallel: [{type: udhr}]\ntemplates: {dialog: 0.1}\n"))


def test_invalid_yaml_names_the_line(tmp_path):
    with pytest.raises(recipes.RecipeError, match=r"r.yaml, line \d+: not valid YAML"):
        recipes.load(write(tmp_path, "name: x\nparallel: [{type: udhr}\n  seed: 3\n"))


def test_unknown_recipe_lists_the_shipped_ones():
    with pytest.raises(recipes.RecipeError, match="embedded"):
        recipes.load("nope")


def test_command_line_overrides_the_recipe():
    recipe = apply_overrides(recipes.load("bayling2"), parse_args(["--recipe", "bayling2", "--total", "1000", "--share", "zh=0.5,en=0.25,cross_lingual=0.25", "--seed", "7"]))
    assert recipe.mixture.total == 1000 and recipe.mixture.shares["zh"] == 0.5 and recipe.seed == 7
    with pytest.raises(recipes.RecipeError, match="--share"):
        apply_overrides(recipes.load("embedded"), parse_args(["--share", "zh=0.9,en=0.3"]))


@pytest.mark.parametrize(("options", "message"), [
    ({"version": "v1.0.0", "bump": "minor"}, "give --version or --bump, not both"),
    ({"bump": "patch", "output": Path("o")}, "with --output, give --version"),
    ({"tasks": 0}, "--tasks: must be at least 1, got 0"),
    ({"executor": "dask"}, "--executor: expected local or ray, got 'dask'"),
])  # fmt: skip
def test_options_that_do_not_go_together_are_refused(options, message, capsys):
    with pytest.raises(ValueError, match=re.escape(message)):
        BuildOptions(**options)
    argv = [part for key, value in options.items() for part in (f"--{key}", str(value))]
    with pytest.raises(SystemExit) as stopped:
        parse_args(argv)  # the command line reports them as usage errors, naming the option
    error = capsys.readouterr().err.splitlines()[-1]
    assert stopped.value.code == 2 and "error: " in error and f"--{list(options)[-1]}" in error


def test_table_source_defaults(tmp_path):
    recipe = recipes.load(write(tmp_path, "name: x\nparallel: [{type: parquet, path: /data/*.parquet}]\n"))
    source = recipe.parallel[0]
    assert isinstance(source, TableSource) and source.format == "parquet" and source.name == "parquet:*.parquet"


# What the shipped recipes' to_dict() gave before the recipe moved to schemas.config (and with options over them):
# the build key hashes it, so a change here rebuilds every version.
TO_DICT_BEFORE = Path(__file__).with_name("recipe_to_dict.json")


@pytest.mark.parametrize("case", list(json.loads(TO_DICT_BEFORE.read_text())))
def test_to_dict_is_byte_identical_to_before(case):
    expected = json.loads(TO_DICT_BEFORE.read_text())[case]
    args = parse_args(case.split()) if case.startswith("--") else parse_args(["--recipe", case])
    recipe = apply_overrides(recipes.load(args.recipe), args)
    got = recipe.to_dict()
    got["path"] = got["path"].split("/pipelines/")[-1]  # the checkout's folder is not part of the recipe
    assert json.dumps(got, default=repr) == json.dumps(expected)


def test_a_strict_recipe_says_so_in_to_dict(tmp_path):
    assert "strict" not in recipes.load("embedded").to_dict()
    assert recipes.load(write(tmp_path, "name: x\nparallel: [{type: udhr}]\nstrict: true\n")).to_dict()["strict"] is True
