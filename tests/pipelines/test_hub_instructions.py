"""Instruction sets on the Hub (pipelines/hub_instructions.py) against the loopback Hub (tests/hub_server.py): each
preset's repository is served in its real layout and schema (column names and types, nesting of the turns; a set
shipped as JSON is served from its Parquet conversion, refs/convert/parquet), a few dozen rows each."""

from __future__ import annotations

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
from pipelines.hub_instructions import INSTRUCTION_PRESETS, HubInstructionSource, is_noncommercial, split_files
from pipelines.sources import SourceError
from tests.hub_server import HubServer
from tests.pipelines.test_hub_sources import opus_like, udhr_paragraphs, upload

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hf_loopbackSECRETtoken0123456789"
CONVERT = "refs/convert/parquet"
TOPICS_EN = ["rivers", "bridges", "gardens", "libraries", "trains", "clouds", "markets", "lighthouses", "orchards", "museums"]
TOPICS_ZH = ["河流", "桥梁", "花园", "图书馆", "火车", "云朵", "市场", "灯塔", "果园", "博物馆"]
# one FLORES-like dev sentence (13 words or more): a Dolly row quotes it, so decontamination must remove that row
FLORES_SENTENCE = "The committee met on a rainy Tuesday morning to discuss the new plans for the harbour district"
MESSAGE = pa.struct([("content", pa.string()), ("role", pa.string())])  # as ultrachat_200k and no_robots declare it


def en(i: int, kind: str) -> str:
    return f"Write {kind} number {i} about {TOPICS_EN[i % 10]} for a reader aged {20 + i}."


def zh(i: int, kind: str) -> str:
    return f"请写第{i}篇关于{TOPICS_ZH[i % 10]}的{kind},给{20 + i}岁的读者。"


def card(configs: list[tuple[str, list[tuple[str, str]]]], title: str) -> str:
    lines = ["---", "configs:"]
    for name, splits in configs:
        lines += [f"- config_name: {name}", "  data_files:"] + [f"  - split: {s}\n    path: {p}" for s, p in splits]
    return "\n".join([*lines, "---", f"# {title} (a loopback look-alike)", ""])


def preset_tables(sizes: dict[str, int] | None = None) -> dict[str, dict[str, pa.Table]]:
    """{preset: {path in the repo (or @convert path): table}} in each set's real schema. Cross-source copies are
    planted: alpaca_zh's first row is belle's first row in other case and spacing, no_robots' first is ultrachat's."""
    n = {"ultrachat": 50, "openorca": 40, "dolly": 30, "no_robots": 30, "firefly": 40, "belle": 120, "alpaca_zh": 40, "coig_cqia": 20, **(sizes or {})}
    tables = {}
    turns = [[{"content": en(i, "a dialogue"), "role": "user"}, {"content": f"Here is dialogue {i}.", "role": "assistant"},
              {"content": "Make it shorter.", "role": "user"}, {"content": f"Dialogue {i}, shorter.", "role": "assistant"}] for i in range(n["ultrachat"])]  # fmt: skip
    tables["ultrachat"] = {"data/train_sft-00000-of-00001.parquet": pa.table({
        "prompt": [t[0]["content"] for t in turns], "prompt_id": [f"{i:064x}" for i in range(len(turns))],
        "messages": pa.array(turns, pa.list_(MESSAGE))}),
        "data/test_sft-00000-of-00001.parquet": pa.table({"prompt": ["held out"], "prompt_id": ["0" * 64],
                                                          "messages": pa.array([[{"content": "held out", "role": "user"}]], pa.list_(MESSAGE))})}  # fmt: skip
    rows = range(n["openorca"])
    tables["openorca"] = {
        "1M-GPT4-Augmented.parquet": pa.table({"id": [f"flan.{i}" for i in rows], "system_prompt": ["" if i % 2 else "You are a helpful assistant." for i in rows],
                                               "question": [en(i, "a flan task") for i in rows], "response": [f"Answer {i}." for i in rows]}),
        "3_5M-GPT3_5-Augmented.parquet": pa.table({"id": ["niv.0"], "system_prompt": [""], "question": ["not read: GPT-3.5 part"], "response": ["no"]}),
    }  # fmt: skip
    rows = range(n["dolly"])
    tables["dolly"] = {f"@{CONVERT}/default/train/0000.parquet": pa.table({
        "instruction": [en(i, "a summary") for i in rows],
        "context": [FLORES_SENTENCE + " today." if i == 3 else ("" if i % 2 else f"Context {i}.") for i in rows],
        "response": [f"Summary {i}." for i in rows], "category": ["summarization"] * len(rows)}),
        "databricks-dolly-15k.jsonl": None}  # fmt: skip
    rows = range(n["no_robots"])
    no_robots = [[{"content": "You are kind.", "role": "system"}, {"content": en(i, "a poem"), "role": "user"}, {"content": f"Poem {i}.", "role": "assistant"}] for i in rows]
    no_robots[0] = [{"content": m["content"].upper().replace(" ", "  "), "role": m["role"]} for m in turns[0]]  # ultrachat's first, folded differently
    tables["no_robots"] = {"data/train-00000-of-00001.parquet": pa.table({
        "prompt": [m[0]["content"] for m in no_robots], "prompt_id": [f"{i:064x}" for i in rows],
        "messages": pa.array(no_robots, pa.list_(MESSAGE)), "category": ["Generation"] * len(rows)})}  # fmt: skip
    half = n["firefly"] // 2
    tables["firefly"] = {f"@{CONVERT}/default/train/{k:04d}.parquet": pa.table({
        "kind": ["Couplet"] * half, "input": [zh(i, "对联") for i in range(k * half, (k + 1) * half)],
        "target": [f"答案{i}。" for i in range(k * half, (k + 1) * half)]}) for k in range(2)}  # fmt: skip
    rows = range(n["belle"])
    belle = {"instruction": [zh(i, "故事") for i in rows], "input": ["" if i % 3 else f"补充{i}" for i in rows], "output": [f"故事{i}。" for i in rows]}
    tables["belle"] = {f"@{CONVERT}/default/train/0000.parquet": pa.table(belle)}
    rows = range(n["alpaca_zh"])
    alpaca = {"instruction": [zh(i, "说明") for i in rows], "input": ["" for _ in rows], "output": [f"说明{i}。" for i in rows]}
    alpaca["instruction"][0], alpaca["input"][0], alpaca["output"][0] = "  " + belle["instruction"][0] + " ", belle["input"][0], belle["output"][0].upper()
    tables["alpaca_zh"] = {f"@{CONVERT}/default/train/0000.parquet": pa.table(alpaca)}
    tables["coig_cqia"] = {}
    for k, config in enumerate(["zhihu", "ruozhiba"]):
        rows = range(k * n["coig_cqia"], (k + 1) * n["coig_cqia"])
        tables["coig_cqia"][f"@{CONVERT}/{config}/train/0000.parquet"] = pa.table({
            "instruction": [zh(i, "回答") for i in rows], "input": [""] * len(rows), "output": [f"回答{i}。" for i in rows],
            "task_type": pa.array([{"major": ["问答"], "minor": ["社区问答"]}] * len(rows)), "domain": [["通用"]] * len(rows),
            "metadata": [""] * len(rows), "answer_from": ["human"] * len(rows), "human_verified": [True] * len(rows), "copyright": [""] * len(rows)})  # fmt: skip
    return tables


CARDS = {
    "ultrachat": card([("default", [("train_sft", "data/train_sft-*"), ("test_sft", "data/test_sft-*")])], "ultrachat_200k"),
    "no_robots": card([("default", [("train", "data/train-*"), ("test", "data/test-*")])], "no_robots"),
    "openorca": "---\nlicense: mit\n---\n# OpenOrca (a loopback look-alike)\n",
    "coig_cqia": card([("zhihu", [("train", "zhihu/*.jsonl")]), ("ruozhiba", [("train", "ruozhiba/*.jsonl")])], "COIG-CQIA"),
}


def upload_presets(hub, tmp_path: Path, sizes: dict | None = None, gated: tuple = ()) -> dict[str, dict]:
    """Every preset's repository on the loopback Hub; {preset: {"commit": of the revision it reads, "rows": train rows}}."""
    api = HfApi(endpoint=hub.url, token=TOKEN)
    found = {}
    for preset, files in preset_tables(sizes).items():
        repo = INSTRUCTION_PRESETS[preset].repo
        api.create_repo(repo, repo_type="dataset", exist_ok=True)
        main, converted = tmp_path / "presets" / preset / "main", tmp_path / "presets" / preset / "convert"
        main.mkdir(parents=True)
        converted.mkdir(parents=True)
        if any(p.startswith("@") for p in files):
            api.create_branch(repo, repo_type="dataset", branch=CONVERT)  # from the first commit: the conversion holds only Parquet
        (main / "README.md").write_text(CARDS.get(preset, f"---\nlicense: {INSTRUCTION_PRESETS[preset].license.split(';')[0]}\n---\n# {preset}\n"))
        for path, table in files.items():
            target = converted / path.split("/", 3)[-1] if path.startswith("@") else main / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if table is None:  # the original JSONL, which the preset does not read
                target.write_text('{"instruction": "only in JSONL"}\n')
            else:
                pq.write_table(table, target)
            if path.startswith("@") and preset == "coig_cqia":  # the original's JSONL beside the conversion
                (main / path.split("/")[3]).mkdir(exist_ok=True)
                (main / path.split("/")[3] / "data.jsonl").write_text("{}\n")
        commit = api.upload_folder(folder_path=str(main), repo_id=repo, repo_type="dataset").oid
        if any(p.startswith("@") for p in files):
            commit = api.upload_folder(folder_path=str(converted), repo_id=repo, repo_type="dataset", revision=CONVERT).oid
        if preset in gated:
            hub.gate(repo, [TOKEN])
        read = [t for p, t in files.items() if t is not None and "test_sft" not in p and "3_5M" not in p]
        found[preset] = {"commit": commit, "rows": sum(t.num_rows for t in read)}
    return found


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    with HubServer(tmp_path / "hub") as server:
        yield server


READ = """
import json, sys
sys.path.insert(0, {root!r})
from pipelines.hub_instructions import HubInstructionSource
from pipelines.sources import SourceError
out = {{}}
for entry in json.loads(sys.argv[1]):
    try:
        source = HubInstructionSource(**entry)
        malformed = []
        rows = [r for chunk in source.chunks() for t in source.read(chunk, malformed) for r in t.to_pylist()]
        out[source.name] = {{"rows": rows, "provenance": source.provenance(), "chunks": len(source.chunks()), "malformed": len(malformed)}}
    except SourceError as e:
        out[entry.get("preset") or entry.get("repo")] = {{"error": str(e)}}
print(json.dumps(out))
"""


def read_sources(hub, tmp_path: Path, entries: list[dict], token: str | None = TOKEN) -> dict:
    """Read instruction sources in a fresh process (HF_ENDPOINT is read when huggingface_hub is imported)."""
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf-home")}
    env.pop("HF_TOKEN", None)
    if token:
        env["HF_TOKEN"] = token
    done = subprocess.run([sys.executable, "-c", READ.format(root=str(REPO_ROOT)), json.dumps(entries)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert TOKEN not in done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_preset_streams_its_real_schema_as_chat_rows_at_the_commit_it_resolved(hub, tmp_path):
    uploaded = upload_presets(hub, tmp_path)
    got = read_sources(hub, tmp_path, [{"preset": p} for p in uploaded])
    for preset, expected in uploaded.items():
        result = got[f"hub:{preset}"]
        assert "error" not in result, result
        assert len(result["rows"]) == expected["rows"], preset
        assert result["provenance"]["version"] == expected["commit"], preset  # main or refs/convert/parquet, pinned
        assert result["provenance"]["license"] == INSTRUCTION_PRESETS[preset].license
        assert (result["provenance"]["details"].get("noncommercial") == "true") == INSTRUCTION_PRESETS[preset].noncommercial
        assert {r["lang"] for r in result["rows"]} == {INSTRUCTION_PRESETS[preset].lang}
        assert len({r["id"] for r in result["rows"]}) == len(result["rows"])
    first = {p: got[f"hub:{p}"]["rows"][0]["messages"] for p in uploaded}
    assert [m["role"] for m in first["ultrachat"]] == ["user", "assistant", "user", "assistant"]  # multi-turn, as it is
    assert first["ultrachat"][0]["content"] == en(0, "a dialogue")
    assert first["openorca"] == [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": en(0, "a flan task")},
                                 {"role": "assistant", "content": "Answer 0."}]  # fmt: skip
    assert "not read: GPT-3.5 part" not in json.dumps(got["hub:openorca"]["rows"])  # files: only the GPT-4 part
    assert first["dolly"] == [{"role": "user", "content": f"{en(0, 'a summary')}\n\nContext 0."}, {"role": "assistant", "content": "Summary 0."}]
    assert first["firefly"] == [{"role": "user", "content": zh(0, "对联")}, {"role": "assistant", "content": "答案0。"}]
    assert first["belle"][0]["content"] == f"{zh(0, '故事')}\n\n补充0"
    assert got["hub:firefly"]["provenance"]["details"]["files"] == "2"
    assert got["hub:coig_cqia"]["provenance"]["details"]["configs"] == "all"
    assert {r["source_id"].split("/")[0] for r in got["hub:coig_cqia"]["rows"]} == {"zhihu", "ruozhiba"}
    assert "held out" not in json.dumps(got["hub:ultrachat"]["rows"])  # the train_sft split only


def test_a_pinned_commit_reads_the_same_rows_after_main_moves_and_a_gated_set_needs_a_token(hub, tmp_path):
    uploaded = upload_presets(hub, tmp_path, gated=("no_robots",))
    first = uploaded["ultrachat"]["commit"]
    moved = tmp_path / "moved"
    (moved / "data").mkdir(parents=True)
    pq.write_table(pa.table({"prompt": ["new"], "prompt_id": ["1" * 64], "messages": pa.array([[{"content": "new", "role": "user"},
                   {"content": "row", "role": "assistant"}]], pa.list_(MESSAGE))}), moved / "data" / "train_sft-00000-of-00001.parquet")  # fmt: skip
    second = HfApi(endpoint=hub.url, token=TOKEN).upload_folder(folder_path=str(moved), repo_id="HuggingFaceH4/ultrachat_200k", repo_type="dataset").oid
    got = read_sources(hub, tmp_path, [{"preset": "ultrachat", "revision": first, "name": "pinned"}, {"preset": "ultrachat", "name": "main"},
                                       {"preset": "no_robots"}])  # fmt: skip
    assert len(got["pinned"]["rows"]) == uploaded["ultrachat"]["rows"] and got["pinned"]["provenance"]["version"] == first
    assert [r["messages"][0]["content"] for r in got["main"]["rows"]] == ["new"] and got["main"]["provenance"]["version"] == second
    assert got["pinned"]["rows"][0]["id"] != got["main"]["rows"][0]["id"]
    assert len(got["hub:no_robots"]["rows"]) == uploaded["no_robots"]["rows"]  # with the token that accepted the terms
    without = read_sources(hub, tmp_path, [{"preset": "no_robots"}], token=None)["no_robots"]["error"]
    assert "instruction source hub:no_robots: cannot read Hub dataset HuggingFaceH4/no_robots@" in without
    assert "gated dataset: accept its terms on the Hub and set HF_TOKEN" in without
    wrong = read_sources(hub, tmp_path, [{"preset": "no_robots"}], token="hf_someoneElse0123456789")["no_robots"]["error"]
    assert "GatedRepoError" in wrong
    missing = read_sources(hub, tmp_path, [{"repo": "org/missing", "lang": "eng_Latn"}, {"preset": "dolly", "revision": "main"}])
    assert "instruction source hub:missing: cannot read Hub dataset org/missing@main" in missing["org/missing"]["error"]
    assert "has no Parquet files of split 'train'; it has no Parquet files: give `revision: refs/convert/parquet`" in missing["dolly"]["error"]


def test_rows_not_of_their_format_are_reported_with_file_and_row():
    source = HubInstructionSource(repo="org/chat", format="sharegpt", lang="zh", name="chat")
    turns = pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))
    table = pa.table({"conversations": pa.array([[{"from": "human", "value": "你好"}, {"from": "gpt", "value": "你好!"}],
                                                 [{"from": "narrator", "value": "?"}], [], [{"from": "human", "value": None}]], turns)})  # fmt: skip
    malformed = []
    rows = source.to_chat(table, "data/train.parquet", 100, malformed)
    assert rows.num_rows == 1 and rows.column("source_id").to_pylist() == ["data/train.parquet:100"]
    assert [(m.place, m.why) for m in malformed] == [
        ("row 101", "not of the sharegpt format: turn 1's from is 'narrator' (known: assistant, bard, bing, chatgpt, gpt, human, model, prompter, system, user)"),
        ("row 102", "not of the sharegpt format: no turns"), ("row 103", "not of the sharegpt format: turn 1's value is null")]  # fmt: skip
    with pytest.raises(SourceError, match=r"instruction source chat: org/chat/data/train.parquet, row 101: not of the sharegpt format"):
        source.to_chat(table, "data/train.parquet", 100)
    alpaca = HubInstructionSource(repo="org/a", format="alpaca", lang="en", columns={"instruction": "q", "output": "a"})
    malformed = []
    rows = alpaca.to_chat(pa.table({"q": ["Q", None], "a": ["A", "B"]}), "x.parquet", 0, malformed)
    assert rows.column("messages").to_pylist() == [[{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]]
    assert malformed[0].why == "not of the alpaca format: q is null"


def test_hub_instruction_entries_are_validated_with_the_key_named():
    cases = [
        ({"preset": "ultrachatt"}, r"instructions\[0\]: instruction source ultrachatt: unknown preset 'ultrachatt'"),
        ({"type": "hub", "repo": "org/x"}, r"instructions\[0\]: .*needs lang"),
        ({"type": "hub", "repo": "org/x", "lang": "en", "format": "alpaca", "columns": {"prompt": "q"}},
         r"instructions\[0\]: .*columns: prompt is not a column of the alpaca format \(it has instruction, input, output, system\)"),
        ({"type": "hbu", "repo": "org/x"}, r"instructions\[0\]\.type: unknown instruction source type 'hbu'; did you mean hub\?"),
        ({"preset": "dolly", "revison": "main"}, r"instructions\[0\]\.revison: unknown key; did you mean instructions\[0\]\.revision\?"),
    ]
    for source, message in cases:
        with pytest.raises(recipes.RecipeError, match=message):
            recipes.parse({"name": "r", "instructions": [source]})


def test_non_commercial_licenses_are_flagged_and_excluded_with_one_option(tmp_path):
    assert [lic for lic in ["cc-by-nc-4.0", "CC BY-NC-SA 4.0", "gpl-3.0; research use only", "mit", "cc-by-sa-3.0", "apache-2.0", "Non-commercial"]
            if is_noncommercial(lic)] == ["cc-by-nc-4.0", "CC BY-NC-SA 4.0", "gpl-3.0; research use only", "Non-commercial"]  # fmt: skip
    recipe = recipes.load("bayling2")
    assert sorted(s.name for s in recipe.instructions if recipes.noncommercial(s)) == ["hub:belle", "hub:coig_cqia", "hub:no_robots"]
    recipe.exclude_noncommercial = True
    assert recipes.drop_noncommercial(recipe) == ["hub:belle", "hub:coig_cqia", "hub:no_robots"]
    assert [s.name for s in recipe.instructions] == ["hub:firefly", "hub:alpaca_zh", "hub:ultrachat", "hub:openorca", "hub:dolly"]
    assert recipe.to_dict()["exclude_noncommercial"] is True and "exclude_noncommercial" not in recipes.load("bayling2").to_dict()
    local = tmp_path / "r.yaml"
    local.write_text(f"name: r\ninstructions: [{{path: {tmp_path}/*.jsonl, lang: en, license: CC-BY-NC-4.0}}]\nexclude_noncommercial: true\n")
    with pytest.raises(recipes.RecipeError, match=r"r.yaml: exclude_noncommercial: every source is non-commercial \(messages:\*.jsonl\)"):
        recipes.drop_noncommercial(recipes.load(str(local)))


def test_split_files_follow_the_card_the_conversion_or_the_names():
    files = ["README.md", "data/train_sft-00000-of-00003.parquet", "data/train_gen-00000-of-00001.parquet", "data/test_sft-0.parquet"]
    ultra = {"configs": [{"config_name": "default", "data_files": [{"split": "train_sft", "path": "data/train_sft-*"}]}]}
    assert split_files(files, ultra, None, "train_sft") == ["data/train_sft-00000-of-00003.parquet"]
    converted = ["default/train/0000.parquet", "default/train/0001.parquet", "default/test/0000.parquet", "big/partial-train/0000.parquet"]
    assert split_files(converted, {}, None, "train") == ["default/train/0000.parquet", "default/train/0001.parquet"]
    assert split_files(converted, {}, "big", "train") == ["big/partial-train/0000.parquet"]
    assert split_files(["1M-GPT4-Augmented.parquet", "3_5M-GPT3_5-Augmented.parquet", "test-0.parquet"], {}, None, "train") == [
        "1M-GPT4-Augmented.parquet", "3_5M-GPT3_5-Augmented.parquet"]  # fmt: skip


def serve_bayling2(hub, tmp_path: Path) -> dict:
    """Every Hub source of bayling2.yaml on the loopback Hub: {preset or repo: {"commit", "rows"}}."""
    served = upload_presets(hub, tmp_path)
    opus_like(tmp_path / "opus", udhr_paragraphs())
    served["opus-100"] = {"commit": upload(hub, "Helsinki-NLP/opus-100", tmp_path / "opus")}
    for split, text in (("dev", FLORES_SENTENCE + "."), ("devtest", "Another evaluation sentence that no training text contains at all.")):
        (tmp_path / "flores" / split).mkdir(parents=True)
        pq.write_table(pa.table({"text": [text]}), tmp_path / "flores" / split / "eng_Latn.parquet")
    served["flores_plus"] = {"commit": upload(hub, "openlanguagedata/flores_plus", tmp_path / "flores")}
    hub.gate("openlanguagedata/flores_plus", [TOKEN])  # gated, as FLORES+ is
    return served


def run_build(hub, tmp_path: Path, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    env.pop("HF_TOKEN", None)
    if token:
        env["HF_TOKEN"] = token
    done = subprocess.run([sys.executable, str(REPO_ROOT / "pipelines" / "build.py"), *args], env=env, capture_output=True, text=True, timeout=600)
    assert TOKEN not in done.stdout + done.stderr
    return done


@pytest.mark.slow  # a whole build of the shipped recipe, scaled down, in a fresh process
def test_a_scaled_down_bayling2_build_from_the_hub_has_its_exact_shares_and_no_duplicate_instruction(hub, tmp_path):
    served = serve_bayling2(hub, tmp_path)
    output = tmp_path / "out"
    done = run_build(hub, tmp_path, "--recipe", "bayling2", "--total", "500", "--langs", "deu_Latn,fra_Latn", "--output", str(output),
                     "--tasks", "2", "--workers", "2")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((output / "manifest.json").read_text())
    versions = {s["name"]: s["version"] for s in manifest["sources"]}
    for preset in INSTRUCTION_PRESETS:
        assert versions[f"hub:{preset}"] == served[preset]["commit"], preset
    rows = pl.read_parquet(output / "data" / "*" / "*.parquet")
    train = rows.filter(pl.col("split") == "train")
    families = {"zh": train.filter(pl.col("source").is_in([f"hub:{p}" for p, s in INSTRUCTION_PRESETS.items() if s.lang == "zho_Hans"])).height,
                "en": train.filter(pl.col("source").is_in([f"hub:{p}" for p, s in INSTRUCTION_PRESETS.items() if s.lang == "eng_Latn"])).height}  # fmt: skip
    families["cross_lingual"] = train.filter(pl.col("task") != "instruction").height
    assert sum(families.values()) == train.height == 500
    for name, share in {"zh": 0.432, "en": 0.262, "cross_lingual": 0.306}.items():
        assert abs(families[name] / train.height - share) <= 0.0001, (name, families)  # within 0.01 percentage point
    # no instruction twice after case and space folding, across sources
    folded = rows.filter(pl.col("task") == "instruction").select(pl.col("messages").list.eval(
        pl.element().struct.field("role") + ":" + pl.element().struct.field("content").str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()
    ).list.join("\n").alias("folded"))  # fmt: skip
    assert folded["folded"].is_duplicated().sum() == 0
    removed = pl.read_parquet(output / "removed" / "chat.parquet")
    duplicates = removed.filter(pl.col("reason") == "duplicate")
    assert {(s, sid) for s, sid in zip(duplicates["source"], duplicates["source_id"])} >= {
        ("hub:alpaca_zh", "default/train/0000.parquet:0"), ("hub:no_robots", "data/train-00000-of-00001.parquet:0")}  # the planted copies
    overlap = removed.filter(pl.col("reason") == "overlap:flores_plus")
    assert overlap["source_id"].to_list() == ["default/train/0000.parquet:3"] and overlap["source"].to_list() == ["hub:dolly"]
    assert manifest["decontamination"] == {"flores_plus": 1}  # the Dolly row: no pair quotes FLORES+ here
    card, license_text = (output / "README.md").read_text(), (output / "LICENSE").read_text()
    assert "**Non-commercial sources**: hub:belle, hub:coig_cqia, hub:no_robots." in card
    assert "| hub:no_robots | " in card and "cc-by-nc-4.0 **(non-commercial)**" in card
    assert "- hub:belle " in license_text and "gpl-3.0; research use only (dataset card) -- NON-COMMERCIAL" in license_text
