"""Parallel text and evaluation sets from the Hub, against the loopback Hub (tests/hub_server.py): a build streams an
opus-100-shaped dataset through the `opus-100` preset at a commit it resolves itself, and decontaminates against a
flores_plus-shaped evaluation set."""

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import HfApi, constants

from pipelines import recipe as recipes
from pipelines.sources import HubEvalSet, HubSource, SourceError
from schemas.text.udhr import load_udhr
from tests.hub_server import HubServer

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hf_loopbackSECRETtoken0123456789"
OPUS_LANGS = {"de": "deu_Latn", "fr": "fra_Latn", "en": "eng_Latn", "zh": "zho_Hans"}
CONFIGS = {"de-en": ("de", "en"), "en-fr": ("en", "fr"), "en-zh": ("en", "zh"), "de-fr": ("de", "fr"), "de-zh": ("de", "zh")}
TEST_ONLY = {"de-zh"}  # as opus-100's zero-shot pairs: a test split only


def udhr_paragraphs() -> dict[str, list[str]]:
    """The same training paragraphs of the UDHR in German, French, English and Chinese, aligned."""
    frame = load_udhr().filter(pl.col("primary") & (pl.col("split") == "train") & pl.col("lang").is_in(list(OPUS_LANGS.values())))
    wide = frame.pivot(on="lang", index=["article", "paragraph"], values="text").drop_nulls().sort("article", "paragraph")
    return {code: wide[flores].to_list()[:40] for code, flores in OPUS_LANGS.items()}


def opus_like(folder: Path, texts: dict[str, list[str]]) -> None:
    """Helsinki-NLP/opus-100's layout: a folder per config, rows {"translation": {"de": ..., "en": ...}}, configs
    declared in the card. de-fr has no pivot side and de-zh no train split: `configs: all` reads neither."""
    card = ["---", "configs:"]
    for config, (a, b) in CONFIGS.items():
        (folder / config).mkdir(parents=True)
        split = "test" if config in TEST_ONLY else "train"
        rows = [{"translation": {a: x, b: y}} for x, y in zip(texts[a], texts[b])]
        pq.write_table(pa.Table.from_pylist(rows), folder / config / f"{split}-00000-of-00001.parquet")
        card += [f"- config_name: {config}", "  data_files:", f"  - split: {split}", f"    path: {config}/{split}-*"]
    (folder / "README.md").write_text("\n".join(card + ["---", "# an opus-100 look-alike", ""]))


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the loopback Hub speaks LFS, not Xet
    with HubServer(tmp_path / "hub") as server:
        yield server


def upload(hub, repo_id: str, folder: Path) -> str:
    api = HfApi(endpoint=hub.url, token=TOKEN)
    api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
    return api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset").oid


def build(hub, tmp_path: Path, recipe: dict, output: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "recipe.yaml"
    path.write_text(json.dumps(recipe))
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": TOKEN, "HF_HOME": str(tmp_path / "hf-home")}
    command = [sys.executable, str(REPO_ROOT / "pipelines" / "build.py"), "--recipe", str(path), "--output", str(output), "--tasks", "2", "--workers", "2"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # two whole builds, each in a fresh process
def test_a_build_streams_a_hub_preset_at_a_resolved_commit_and_decontaminates_against_a_hub_eval_set(hub, tmp_path):
    texts = udhr_paragraphs()
    opus_like(tmp_path / "opus", texts)
    first = upload(hub, "Helsinki-NLP/opus-100", tmp_path / "opus")
    contaminated = texts["de"][3]  # one German paragraph is "FLORES" text: its pairs must go
    (tmp_path / "flores" / "dev").mkdir(parents=True)
    (tmp_path / "flores" / "devtest").mkdir()
    pq.write_table(pa.table({"text": [contaminated, "A sentence of no training pair at all, twenty words or so."]}), tmp_path / "flores" / "devtest" / "deu_Latn.parquet")
    pq.write_table(pa.table({"text": ["An English dev sentence that nothing here contains."]}), tmp_path / "flores" / "dev" / "eng_Latn.parquet")
    pq.write_table(pa.table({"text": ["train text is no evaluation text, never read"]}), tmp_path / "flores" / "train-00000.parquet")
    flores = upload(hub, "openlanguagedata/flores_plus", tmp_path / "flores")
    recipe = {
        "name": "hub-test",
        "parallel": [{"type": "hub", "preset": "opus-100", "configs": "all", "revision": "main"}],
        "decontamination": {"eval_sets": [{"hub": "openlanguagedata/flores_plus", "splits": ["dev", "devtest"]},
                                          {"hub": "org/unreachable-eval", "optional": True}]},  # fmt: skip
        "templates": {"sentence": 1.0},
    }
    done = build(hub, tmp_path, recipe, tmp_path / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    assert TOKEN not in done.stdout + done.stderr
    assert "org/unreachable-eval" in done.stderr and "optional" in done.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())

    source = manifest["sources"][0]
    assert source["origin"] == "hf://datasets/Helsinki-NLP/opus-100" and source["version"] == first  # main, pinned to its commit
    assert source["details"]["configs"] == "de-en,en-fr,en-zh"
    assert source["details"]["skipped_configs"] == "de-fr (no English or Chinese side), de-zh (no train split)"
    used, skipped = manifest["eval_sets"]
    assert (used["name"], used["version"], used["texts"]) == ("flores_plus", flores, 3)  # dev + devtest, not train
    assert skipped["name"] == "unreachable-eval" and skipped["skipped"]
    assert manifest["decontamination"]["flores_plus"] >= 1
    card = (tmp_path / "out" / "README.md").read_text()
    assert f"| flores_plus | hf://datasets/openlanguagedata/flores_plus | {flores} | {manifest['decontamination']['flores_plus']} |" in card
    assert "| unreachable-eval | hf://datasets/org/unreachable-eval | - | not used: eval set unreachable-eval" in card

    rows = pl.read_parquet(tmp_path / "out" / "data" / "*" / "*.parquet")
    assert set(rows["src_lang"]) == {"deu_Latn", "fra_Latn", "eng_Latn", "zho_Hans"}
    directions = set(zip(rows["src_lang"], rows["tgt_lang"]))
    for x in ("deu_Latn", "fra_Latn"):  # both pivots in both directions; X <-> zho_Hans by the pivot join
        assert {(x, "eng_Latn"), ("eng_Latn", x), (x, "zho_Hans"), ("zho_Hans", x)} <= directions
    assert not rows["messages"].list.eval(pl.element().struct.field("content").str.contains(contaminated, literal=True)).list.any().any()
    removed = pl.read_parquet(tmp_path / "out" / "removed" / "decontaminate.parquet")
    assert contaminated in removed.filter(pl.col("reason") == "overlap:flores_plus")["src_text"].to_list()

    # main moves: the same recipe is a new build (the commit is in the build key), not "already holds this build"
    texts["fr"][0] = texts["fr"][0] + " (révisé)"
    opus_like(tmp_path / "opus2", texts)
    second = upload(hub, "Helsinki-NLP/opus-100", tmp_path / "opus2")
    again = build(hub, tmp_path, recipe, tmp_path / "out2")
    assert again.returncode == 0 and "already holds" not in again.stdout, again.stderr[-3000:]
    assert json.loads((tmp_path / "out2" / "manifest.json").read_text())["sources"][0]["version"] == second != first


@pytest.mark.slow
def test_an_unreachable_hub_source_stops_the_build_before_anything_is_written(hub, tmp_path):
    texts = udhr_paragraphs()
    opus_like(tmp_path / "opus", texts)
    upload(hub, "Helsinki-NLP/opus-100", tmp_path / "opus")
    recipe = {"name": "hub-test-only", "parallel": [{"type": "hub", "preset": "opus-100", "configs": ["de-en", "de-zh"]}]}
    done = build(hub, tmp_path, recipe, tmp_path / "out")
    assert done.returncode == 2 and "source hub:opus-100.configs: de-zh has no split 'train' (it has test)" in done.stderr, done.stderr[-2000:]
    recipe = {"name": "hub-columns", "languages": ["deu_Latn"], "parallel": [{"type": "hub", "repo": "Helsinki-NLP/opus-100", "config": "de-en",
              "src_lang": "de", "tgt_lang": "en", "columns": {"src_text": "translation.deu", "tgt_text": "translation.en"}}]}  # fmt: skip
    done = build(hub, tmp_path, recipe, tmp_path / "columns")  # found by the task that reads it: the build stops
    assert done.returncode != 0 and "has no translation.deu for translation.deu" in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "columns").exists()
    recipe = {"name": "hub-missing", "parallel": [{"type": "hub", "preset": "opus-100", "repo": "org/missing", "configs": ["de-en"]}]}
    done = build(hub, tmp_path, recipe, tmp_path / "out")
    assert done.returncode == 2
    assert "source hub:missing: cannot read Hub dataset org/missing@main" in done.stderr
    assert TOKEN not in done.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    recipe = {"name": "eval-missing", "parallel": [{"type": "udhr"}], "languages": ["deu_Latn"],
              "decontamination": {"eval_sets": [{"hub": "openlanguagedata/flores_plus"}]}}  # fmt: skip
    done = build(hub, tmp_path, recipe, tmp_path / "out")
    assert done.returncode == 2 and "eval set flores_plus (openlanguagedata/flores_plus@main): cannot fetch" in done.stderr
    assert not (tmp_path / "out").exists()


def test_presets_name_the_languages_and_columns_of_each_config():
    nllb = HubSource(name="n", preset="nllb", configs=["deu_Latn-eng_Latn", "eng_Latn-zho_Hant"])
    assert nllb.repo == "allenai/nllb" and nllb.plan() == {
        "deu_Latn-eng_Latn": ("deu_Latn", "eng_Latn", {"src_text": "translation.deu_Latn", "tgt_text": "translation.eng_Latn"}),
        "eng_Latn-zho_Hant": ("eng_Latn", "zho_Hant", {"src_text": "translation.eng_Latn", "tgt_text": "translation.zho_Hant"}),
    }
    assert nllb.has_unpaired() is False
    tatoeba = HubSource(name="t", preset="tatoeba_mt", configs=["deu-eng"])
    assert tatoeba.hub_split == "test" and tatoeba.plan()["deu-eng"] == ("deu_Latn", "eng_Latn", {"src_text": "sourceString", "tgt_text": "targetString"})
    with pytest.raises(SourceError, match=r"'de-fr' is not a language pair with English or Chinese"):
        HubSource(name="o", preset="opus-100", configs=["de-fr"]).plan()


def test_hub_entries_are_validated_with_the_key_named():
    cases = [
        ({"type": "hub", "preset": "opus-1000", "configs": "all"}, r"parallel\[0\]: source hub:opus-1000: unknown preset 'opus-1000'"),
        ({"type": "hub", "preset": "opus-100"}, r"parallel\[0\]: .*a preset needs `configs:`"),
        ({"type": "hub", "preset": "opus-100", "configs": "some"}, r"parallel\[0\]: .*configs: expected all or a list"),
        ({"type": "hub", "repo": "org/data"}, r"parallel\[0\]: .*needs src_lang, tgt_lang, columns.src_text, columns.tgt_text"),
        ({"type": "hub", "preset": "nllb", "configs": "all", "revison": "main"}, r"parallel\[0\]\.revison: unknown key; did you mean parallel\[0\]\.revision\?"),
    ]
    for source, message in cases:
        with pytest.raises(recipes.RecipeError, match=message):
            recipes.parse({"name": "r", "parallel": [source]})
    with pytest.raises(recipes.RecipeError, match=r"decontamination.eval_sets\[1\].split: unknown key; did you mean decontamination.eval_sets\[1\].splits\?"):
        recipes.parse({"name": "r", "parallel": [{"type": "udhr"}], "decontamination": {"eval_sets": ["a.txt", {"hub": "o/f", "split": ["dev"]}]}})
    with pytest.raises(recipes.RecipeError, match=r"decontamination.eval_sets\[0\]: expected a file path or a Hub dataset"):
        recipes.parse({"name": "r", "parallel": [{"type": "udhr"}], "decontamination": {"eval_sets": [{"path": "x"}]}})


def test_an_eval_set_reads_only_the_files_of_its_splits():
    flores = HubEvalSet(hub="openlanguagedata/flores_plus", splits=["dev"])
    assert [f for f in ["dev/eng_Latn.parquet", "devtest/eng_Latn.parquet", "data/dev-00000-of-00001.parquet", "data/devtest-0.parquet", "dev.parquet"]
            if flores._in_splits(f)] == ["dev/eng_Latn.parquet", "data/dev-00000-of-00001.parquet", "dev.parquet"]  # fmt: skip


def test_an_eval_set_at_a_commit_is_read_again_without_the_hub(hub, tmp_path):
    (tmp_path / "flores" / "devtest").mkdir(parents=True)
    pq.write_table(pa.table({"text": ["Ein Satz aus einer Evaluation.", "A sentence of an evaluation."]}), tmp_path / "flores" / "devtest" / "x.parquet")
    commit = upload(hub, "openlanguagedata/flores_plus", tmp_path / "flores")
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(REPO_ROOT)!r})\n"
        "from pipelines.sources import HubEvalSet, SourceError\n"
        "try:\n"
        "    local, record = HubEvalSet(hub='openlanguagedata/flores_plus', revision=sys.argv[1], splits=['devtest']).fetch()\n"
        "    print(json.dumps({'local': str(local), **record}))\n"
        "except SourceError as e:\n"
        "    print(json.dumps({'error': str(e)}))\n"
    )

    def fetch(endpoint, revision):  # in a fresh process: HF_ENDPOINT is read at import
        env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": TOKEN, "HF_HOME": str(tmp_path / "hf-home")}
        done = subprocess.run([sys.executable, "-c", code, revision], env=env, capture_output=True, text=True, timeout=120)
        return json.loads(done.stdout.strip().splitlines()[-1])

    first = fetch(hub.url, "main")
    assert first["version"] == commit and first["texts"] == 2
    assert pq.read_table(first["local"])["text"].to_pylist() == ["Ein Satz aus einer Evaluation.", "A sentence of an evaluation."]
    offline = fetch("http://127.0.0.1:9", commit)  # nothing listens there: the kept file is read
    assert offline["local"] == first["local"] and offline["sha256"] == first["sha256"]
    assert "cannot fetch" in fetch("http://127.0.0.1:9", "main")["error"]  # a branch needs the Hub to resolve it
