"""training.evaluation and its suites on tiny local data, with a tiny random Llama and the real Llama-3 tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training.evaluation.evaluate import main

pytest.importorskip("sacrebleu")


def _llama3_tokenizer():
    from training.tokenizers import load_tokenizer

    return load_tokenizer("llama3")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A randomly initialized two-layer Llama saved as a Hugging Face folder, as training/ exports one."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _llama3_tokenizer()
    folder = tmp_path_factory.mktemp("models") / "tiny-llama"
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _run(tiny_llama: Path, output: Path, *extra: str) -> dict:
    assert main(["--model", str(tiny_llama), "--output", str(output), "--batch-size", "4", *extra]) == 0
    return json.loads((output / "results.json").read_text(encoding="utf-8"))


def _check_report(output: Path, suite: str) -> None:
    report = (output / "report.md").read_text(encoding="utf-8")
    assert f"## {suite.capitalize()}" in report and "| ---" not in report and "|---|" in report
    assert (output / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


TRANSLATION = [
    "--suite",
    "translation",
    "--langs",
    "deu_Latn",
    "--max-segments",
    "2",
    "--max-new-tokens",
    "6",
    "--engine",
    "transformers",
]


@pytest.fixture(scope="module")
def translation_run(tiny_llama, tmp_path_factory) -> tuple[Path, dict]:
    output = tmp_path_factory.mktemp("eval") / "translation"
    return output, _run(tiny_llama, output, *TRANSLATION)


def test_translation_suite_scores_every_pivot_direction_on_the_heldout_udhr(translation_run):
    output, results = translation_run
    rows = results["suites"]["translation"]["rows"]
    assert set(rows) == {
        "deu_Latn->eng_Latn",
        "eng_Latn->deu_Latn",
        "deu_Latn->zho_Hans",
        "zho_Hans->deu_Latn",
        "eng_Latn->zho_Hans",
        "zho_Hans->eng_Latn",
    }
    assert all(row["segments"] == 2 and 0 <= row["chrf++"] <= 100 for row in rows.values())
    assert rows["deu_Latn->zho_Hans"]["bleu_tokenizer"] in ("zh", "flores200")
    assert rows["deu_Latn->eng_Latn"]["bleu_tokenizer"] in ("13a", "flores200")
    outputs = results["suites"]["translation"]["outputs"]
    assert all(
        o["id"].startswith("udhr:") and ":a28." in o["id"] or ":a29" in o["id"] or ":a30" in o["id"] for o in outputs
    )
    assert results["suites"]["translation"]["by_language"].keys() == {"deu_Latn", "eng_Latn"}
    _check_report(output, "translation")


def test_prompts_are_the_trainers_phrasings_in_the_pivots_language(tiny_llama):
    from transformers import AutoTokenizer

    from training.evaluation.translation import Segment, encode_prompts

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    segments = [
        Segment("deu_Latn", "eng_Latn", "Jeder hat Pflichten.", "Everyone has duties.", "a"),
        Segment("zho_Hans", "deu_Latn", "人人有义务。", "Jeder hat Pflichten.", "b"),
    ]
    english, chinese = (tokenizer.decode(ids) for ids in encode_prompts(segments, tokenizer, "auto"))
    assert "Translate the following German text into English.\n\nJeder hat Pflichten." in english
    assert "将下面的中文文本翻译成德语。\n\n人人有义务。" in chinese
    assert english.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_scores_are_sacrebleus_and_a_perfect_translation_gets_100():
    from training.evaluation.translation import score_direction

    references = [
        "Everyone has duties to the community.",
        "These rights may in no case be exercised contrary to the law.",
    ]
    perfect = score_direction(references, references, "eng_Latn")
    assert perfect["chrf++"] == pytest.approx(100) and perfect["bleu"] == pytest.approx(100)
    partial = score_direction(["Everyone has duties.", "These rights may be exercised."], references, "eng_Latn")
    assert 0 < partial["chrf++"] < 100 and "nw:2" in partial["signatures"]["chrf++"]


def test_flores_layout_folder_is_read_line_aligned_and_a_misaligned_one_is_refused(tmp_path):
    from training.evaluation.translation import load_segments

    for lang, lines in {
        "deu_Latn": ["Eins.", "Zwei.", "Drei."],
        "eng_Latn": ["One.", "Two.", "Three."],
        "zho_Hans": ["一。", "二。", "三。"],
    }.items():
        (tmp_path / "devtest").mkdir(exist_ok=True)
        (tmp_path / "devtest" / f"{lang}.devtest").write_text("\n".join(lines) + "\n", encoding="utf-8")
    segments = load_segments(["deu_Latn"], str(tmp_path), max_per_direction=2)
    by_direction = {}
    for s in segments:
        by_direction.setdefault(s.direction, []).append((s.source, s.reference))
    assert by_direction["eng_Latn->deu_Latn"] == [("One.", "Eins."), ("Two.", "Zwei.")]
    assert by_direction["deu_Latn->zho_Hans"] == [("Eins.", "一。"), ("Zwei.", "二。")]
    assert len(by_direction) == 4  # the CLI adds the pivots to --langs, load_segments takes them as given
    (tmp_path / "devtest" / "zho_Hans.devtest").write_text("一。\n二。\n", encoding="utf-8")
    with pytest.raises(ValueError, match="different line counts"):
        load_segments(["deu_Latn"], str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no devtest file for fra_Latn"):
        load_segments(["fra_Latn"], str(tmp_path))


def test_flores_plus_parquet_layout_is_read(tmp_path):
    from training.evaluation.translation import load_segments

    for lang, lines in {
        "yor_Latn": ["Ọ̀kan.", "Èjì."],
        "eng_Latn": ["One.", "Two."],
        "zho_Hans": ["一。", "二。"],
    }.items():
        (tmp_path / "dev" / "parquet").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"id": [0, 1], "text": lines}), tmp_path / "dev" / "parquet" / f"{lang}.parquet")
    segments = load_segments(["yor_Latn"], str(tmp_path), split="dev", pivots=["eng_Latn"])
    assert [(s.direction, s.source, s.reference) for s in segments] == [
        ("eng_Latn->yor_Latn", "One.", "Ọ̀kan."),
        ("eng_Latn->yor_Latn", "Two.", "Èjì."),
        ("yor_Latn->eng_Latn", "Ọ̀kan.", "One."),
        ("yor_Latn->eng_Latn", "Èjì.", "Two."),
    ]


def test_baseline_adds_the_difference_per_direction_and_language(translation_run, tiny_llama, tmp_path):
    _, first = translation_run
    baseline = json.loads(json.dumps(first))
    for row in baseline["suites"]["translation"]["rows"].values():
        row["chrf++"] -= 5.0
    baseline["suites"]["translation"]["by_language"] = {
        k: v - 2.5 for k, v in first["suites"]["translation"]["by_language"].items()
    }
    (tmp_path / "base.json").write_text(json.dumps(baseline), encoding="utf-8")
    results = _run(tiny_llama, tmp_path / "second", *TRANSLATION, "--baseline", str(tmp_path / "base.json"))
    suite = results["suites"]["translation"]
    # Greedy decoding is deterministic, so the second run scores exactly what the first did.
    assert {d: r["chrf++"] for d, r in suite["rows"].items()} == {
        d: r["chrf++"] for d, r in first["suites"]["translation"]["rows"].items()
    }
    assert all(row["delta"] == pytest.approx(5.0) for row in suite["rows"].values())
    assert all(delta == pytest.approx(2.5) for delta in suite["by_language_delta"].values())
    report = (tmp_path / "second" / "report.md").read_text(encoding="utf-8")
    assert "Δ chrF++" in report and "+5.00" in report


def _training_version(folder: Path, texts: list[str]) -> Path:
    (folder / "data").mkdir(parents=True)
    rows = [
        {"messages": [{"role": "user", "content": f"Translate this:\n{t}"}, {"role": "assistant", "content": "ok"}]}
        for t in texts
    ]
    pq.write_table(pa.Table.from_pylist(rows), folder / "data" / "train-00000-of-00001.parquet")
    return folder


def test_contamination_count_finds_a_planted_leaked_item(tiny_llama, tmp_path):
    import polars as pl

    from schemas.text.udhr import load_udhr

    german = load_udhr().filter((pl.col("lang") == "deu_Latn") & (pl.col("article") == 29))["text"].to_list()
    leaked = max(german, key=len)
    train = _training_version(
        tmp_path / "version", ["Alle Menschen sind frei und gleich an Würde und Rechten geboren.", leaked]
    )
    results = _run(
        tiny_llama,
        tmp_path / "out",
        *TRANSLATION[:-4],
        "--max-segments",
        "8",
        "--max-new-tokens",
        "2",
        "--train-data",
        str(train),
    )
    rows = results["suites"]["translation"]["rows"]
    assert rows["deu_Latn->eng_Latn"]["leaked"] == 1 and rows["deu_Latn->zho_Hans"]["leaked"] == 1
    assert rows["eng_Latn->deu_Latn"]["leaked"] == 1  # the German text is the reference there
    assert rows["eng_Latn->zho_Hans"]["leaked"] == 0
    assert leaked[:50] in rows["deu_Latn->eng_Latn"]["leak_examples"][0]
    assert "| 1 |" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")


def test_contamination_reads_the_train_shards_of_both_version_layouts(tmp_path):
    from training.evaluation.contamination import count_leaked, train_files

    french = (
        "Toute personne a droit à ce que règne, sur le plan social et sur le plan international, un ordre tel que "
        "les droits et libertés énoncés dans la présente Déclaration puissent y trouver plein effet."
    )
    flat = _training_version(tmp_path / "flat", ["Alle Menschen sind frei und gleich an Würde und Rechten geboren."])
    per_config = tmp_path / "per-config"  # data/<config>/train-*.parquet, as builds write now
    for config, text in (("deu_Latn", "Alle Menschen sind frei."), ("fra_Latn", french)):
        (per_config / "data" / config).mkdir(parents=True)
        pq.write_table(
            pa.Table.from_pylist([{"messages": [{"role": "user", "content": f"Translate this:\n{text}"},
                                                {"role": "assistant", "content": "ok"}]}]),
            per_config / "data" / config / "train-00000-of-00001.parquet",
        )  # fmt: skip
    assert [f.name for f in train_files(str(flat))] == ["train-00000-of-00001.parquet"]
    assert [f.parent.name for f in train_files(str(per_config))] == ["deu_Latn", "fra_Latn"]
    assert count_leaked({"x": [[french]], "y": [["Nothing here."]]}, str(per_config))["x"]["leaked"] == 1
    with pytest.raises(FileNotFoundError, match=r"data/\*/train-"):
        train_files(str(tmp_path / "flat" / "data"))


def test_contamination_second_pass_attributes_every_item_of_one_training_text():
    from training.evaluation.contamination import leaked_texts

    first = "Everyone has duties to the community in which alone the free and full development of his personality is possible."
    second = "In the exercise of his rights and freedoms, everyone shall be subject only to such limitations as are determined by law."
    unrelated = "Nothing in this Declaration may be interpreted as implying for any State, group or person any right whatsoever."
    short = "Jeder hat Pflichten gegenüber der Gemeinschaft."
    train = [[f"{first} And then: {second}", f"quoted: {short.lower()} end"]]
    assert leaked_texts([first, second, unrelated, short], train) == {first, second, short}


TINY_TASK = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
should_decontaminate: true
doc_to_decontamination_query: question
doc_to_text: "{{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def _tiny_tasks(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    documents = {
        "deu": [
            ("Was ist die Hauptstadt von Deutschland?", ["Berlin", "Paris", "Rom"], 0),
            ("Wie viele Tage hat eine Woche?", ["fünf", "sieben", "zehn"], 1),
            ("Welche Farbe hat der Himmel am Tag?", ["grün", "rot", "blau"], 2),
        ],
        "eng": [
            ("What is the capital of France?", ["Berlin", "Paris", "Rome"], 1),
            ("How many legs does a spider have?", ["eight", "six", "four"], 0),
        ],
    }
    for lang, docs in documents.items():
        data = folder / f"tiny_{lang}.jsonl"
        data.write_text(
            "".join(
                json.dumps({"question": q, "choices": c, "answer": a}, ensure_ascii=False) + "\n" for q, c, a in docs
            ),
            encoding="utf-8",
        )
        (folder / f"tiny_qa_{lang}.yaml").write_text(
            TINY_TASK.format(name=f"tiny_qa_{lang}", data=data), encoding="utf-8"
        )
    return folder


HARNESS = [
    "--lm-eval-tasks",
    "deu_Latn:tiny_qa_deu,eng_Latn:tiny_qa_eng,deu_Latn:no_such_task",
    "--lm-eval-no-defaults",
]


def test_knowledge_and_english_suites_run_a_local_harness_task(tiny_llama, tmp_path):
    tasks = _tiny_tasks(tmp_path / "tasks")
    train = _training_version(tmp_path / "version", ["Wie viele Tage hat eine Woche?"])
    results = _run(
        tiny_llama,
        tmp_path / "out",
        "--suite",
        "all",
        "--langs",
        "deu_Latn",
        "--max-segments",
        "1",
        "--max-new-tokens",
        "2",
        "--engine",
        "transformers",
        "--lm-eval-include",
        str(tasks),
        *HARNESS,
        "--train-data",
        str(train),
    )
    knowledge, english = results["suites"]["knowledge"]["rows"], results["suites"]["english"]["rows"]
    assert set(knowledge) == {"tiny_qa_deu", "no_such_task"} and set(english) == {"tiny_qa_eng"}
    deu = knowledge["tiny_qa_deu"]
    assert (
        deu["error"] is None
        and deu["metric"] == "acc"
        and deu["n"] == 3
        and deu["score"] in (0.0, 33.3333, 66.6667, 100.0)
    )
    assert deu["leaked"] == 1 and english["tiny_qa_eng"]["leaked"] == 0
    assert english["tiny_qa_eng"]["n"] == 2 and english["tiny_qa_eng"]["score"] in (0.0, 50.0, 100.0)
    assert "not a task" in knowledge["no_such_task"]["error"] and knowledge["no_such_task"]["leaked"] is None
    assert results["suites"]["knowledge"]["by_language"] == {"deu_Latn": deu["score"]}
    _check_report(tmp_path / "out", "knowledge")
    assert "## English" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")


def test_knowledge_table_maps_flores_codes_to_harness_tasks():
    from training.evaluation.knowledge import KNOWLEDGE_TASKS, select_tasks

    assert select_tasks("knowledge", ["swh_Latn"]) == {
        "swh_Latn": ["belebele_swh_Latn", "xcopa_sw", "xstorycloze_sw", "xnli_sw"]
    }
    assert "xwinograd_jp" in KNOWLEDGE_TASKS["jpn_Jpan"] and "m_mmlu_de" in KNOWLEDGE_TASKS["deu_Latn"]
    assert select_tasks("knowledge", ["cri_Latn"]) == {}
    assert "mmlu" in select_tasks("english", None)["eng_Latn"]


@pytest.mark.slow
def test_every_task_of_the_tables_exists_in_the_installed_harness():
    from training.evaluation.knowledge import ENGLISH_TASKS, KNOWLEDGE_TASKS, make_task_manager

    known = set(make_task_manager().all_tasks)
    missing = sorted({t for tasks in KNOWLEDGE_TASKS.values() for t in tasks} - known) + sorted(
        set(ENGLISH_TASKS) - known
    )
    assert not missing, missing


def test_bad_baseline_is_a_clear_error(tiny_llama, tmp_path):
    (tmp_path / "base.json").write_text("{}", encoding="utf-8")
    with pytest.raises(SystemExit, match="not a results.json"):
        main(
            [
                "--model",
                str(tiny_llama),
                "--output",
                str(tmp_path / "o"),
                "--suite",
                "translation",
                "--baseline",
                str(tmp_path / "base.json"),
            ]
        )


def test_the_trainers_call_scores_a_loaded_model_on_the_default_heldout_pairs(tiny_llama):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.evaluation.translation import DEFAULT_LANGS, evaluate_translation

    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    scores = evaluate_translation(
        model,
        AutoTokenizer.from_pretrained(tiny_llama),
        langs=DEFAULT_LANGS[:1],
        max_pairs_per_direction=1,
        max_new_tokens=2,
    )
    assert isinstance(scores["chrf++"], float) and isinstance(scores["bleu"], float)
    assert len(scores["directions"]) == 4 and all(d["segments"] == 1 for d in scores["directions"].values())
    beams = evaluate_translation(
        model,
        AutoTokenizer.from_pretrained(tiny_llama),
        langs=DEFAULT_LANGS[:1],
        max_pairs_per_direction=1,
        max_new_tokens=2,
        num_beams=2,
        keep_outputs=True,
    )
    assert beams["settings"]["num_beams"] == 2 and len(beams["outputs"]) == 4


def test_bad_language_code_stops_before_the_model_is_loaded(tmp_path, capsys):
    assert (
        main(
            [
                "--model",
                str(tmp_path / "no-model"),
                "--output",
                str(tmp_path / "o"),
                "--suite",
                "translation",
                "--langs",
                "deu_Latn,xxx_Latn",
            ]
        )
        == 2
    )
    assert "xxx_Latn" in capsys.readouterr().err and not (tmp_path / "o").exists()
