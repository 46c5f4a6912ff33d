"""The langid command-line tools: training, thresholds, evaluation."""

import json

import polars as pl
import pytest

from langid import evaluate, thresholds, train
from langid.models import FastTextModel
from langid.texts import clauses, load_texts


@pytest.fixture(scope="module")
def small_texts(tmp_path_factory):
    """Train text of six languages (two of them close: nob/nno) and held-out text of the same, as Parquet."""
    langs = ["deu_Latn", "fra_Latn", "nob_Latn", "nno_Latn", "rus_Cyrl", "zho_Hans"]
    folder = tmp_path_factory.mktemp("texts")
    for split in ("train", "heldout"):
        frame = load_texts(f"udhr:{split}").filter(pl.col("lang").is_in(langs))
        frame.write_parquet(folder / f"{split}.parquet")
    return folder


def test_pieces_are_sentence_sized():
    text = "One sentence here. " * 30
    out = train.pieces(text, 100)
    assert all(len(p) <= 100 for p in out) and "".join(out).replace(" ", "") == text.replace(" ", "")
    assert train.pieces("x" * 250, 100) == ["x" * 100, "x" * 100, "x" * 50]


def test_training_restarts_with_a_smaller_learning_rate_after_nan(tmp_path):
    rows = ["__label__a hello world this is a", "__label__b bonjour le monde c est"] * 4
    path = tmp_path / "tiny.txt"
    path.write_text("\n".join(rows) + "\n")
    hp = train.Hyperparameters(lr=400.0, epoch=50, dim=16, bucket=2_000_000)  # diverges for sure at this lr
    model, lr = train.train_robust(path, hp)
    assert lr < 400.0  # it diverged, halved the learning rate, and recovered
    assert model.predict("hello world")[0][0] == "__label__a"


def test_train_evaluate_and_thresholds_end_to_end(small_texts, tmp_path, capsys):
    output = tmp_path / "small-lid.ftz"
    train.main(["--data", str(small_texts / "train.parquet"), "--output", str(output), "--epoch", "25", "--quantize-cutoff", "5000",
                "--min-pieces-per-language", "20"])  # fmt: skip
    card = json.loads(output.with_suffix(".json").read_text())
    assert card["labels"] == 6 and card["quantized"] and card["training_data"][0]["sha256"]
    assert card["hyperparameters"]["epoch"] == 25
    assert output.stat().st_size < 3_000_000

    report_path = tmp_path / "report"
    evaluate.main(["--model", str(output), "--data", str(small_texts / "heldout.parquet"), "--output", str(report_path)])
    printed = capsys.readouterr().out
    report = json.loads(report_path.with_suffix(".json").read_text())
    assert report["languages_covered"] == 6 and report["macro_f1"] > 0.8
    assert {"precision", "recall", "f1", "support"} <= set(report["per_language"][0])
    assert report["sentences_per_second"] > 0 and "macro-F1" in printed
    assert report_path.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"

    thresholds_path = tmp_path / "thresholds.json"
    thresholds.main(["--model", str(output), "--data", str(small_texts / "heldout.parquet"), "--output", str(thresholds_path)])
    saved = json.loads(thresholds_path.read_text())
    assert saved["model_sha256"] == FastTextModel.load(output).sha256
    assert set(saved["per_language"]) <= {"deu_Latn", "fra_Latn", "nob_Latn", "nno_Latn", "rus_Cyrl", "zho_Hans"}


def test_training_never_sees_heldout_text(small_texts):
    examples = train.training_examples([str(small_texts / "train.parquet"), str(small_texts / "heldout.parquet")], train.Hyperparameters())
    heldout = load_texts(str(small_texts / "heldout.parquet"))["text"]
    joined = examples["text"].str.join(" ")[0]
    assert not any(text in joined for text in heldout.to_list() if len(text) > 40)


def test_evaluate_on_pair_parquet_and_bad_input(tmp_path):
    pairs = pl.DataFrame({"src_text": ["Alle Menschen sind frei und gleich."], "src_lang": ["deu_Latn"],
                          "tgt_text": ["All human beings are born free."], "tgt_lang": ["eng_Latn"]})  # fmt: skip
    pairs.write_parquet(tmp_path / "pairs.parquet")
    assert sorted(load_texts(str(tmp_path / "pairs.parquet"))["lang"]) == ["deu_Latn", "eng_Latn"]
    pl.DataFrame({"sentence": ["x"]}).write_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="bad.parquet.*text and lang"):
        load_texts(str(tmp_path / "bad.parquet"))


def test_verify_accepts_true_labels_and_rejects_neighbouring_ones():
    from langid.identify import LanguageIdentifier

    heldout = load_texts("udhr:heldout").filter(pl.col("lang").is_in(["deu_Latn", "nld_Latn", "swe_Latn", "rus_Cyrl", "ukr_Cyrl"]))
    short = clauses(heldout)
    assert short.height > 5 and short["text"].str.len_chars().is_between(20, 60).all()
    assert not short["text"].str.contains(r"[.;:!?]").any()
    found = evaluate.verify(LanguageIdentifier.load(), heldout)
    assert found["languages"] == 5 and found["texts"] == heldout.height  # every language has a same-script neighbour here
    assert found["true_label_accepted"] > 0.5 > 0.1 > found["wrong_label_accepted"]
