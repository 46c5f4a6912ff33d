import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.batch import AtomicParquetWriter, RemovedRows
from pipelines.recipe import Templates
from pipelines.steps.decontaminate import Decontaminate
from pipelines.dedup import MinhashSigner, minhash_config
from pipelines.steps.exact_dedup import ExactPairDedup
from pipelines.steps.near_dedup import NearDuplicateDedup
from pipelines.steps.language_id import LanguageIdFilter
from pipelines.steps.mix import MixInstructions
from pipelines.steps.normalize import NormalizeText
from pipelines.steps.pair_filters import PairFilter
from pipelines.steps.read_pairs import languages_of_task
from pipelines.steps.write import PairWriter
from schemas.language_codes import language_name
from schemas.records import INSTRUCTION_SCHEMA, MESSAGE_TYPE, PAIR_SCHEMA, REMOVED_SCHEMA, stable_digests, stable_id, stable_ids
from schemas.text.overlap import EvalIndex
from schemas.text.templates import PHRASINGS, choose_phrasing, dialogue_rows, document_rows, ordered_runs, positioned, translation_rows
from schemas.text.udhr import align, language_pairs, load_udhr, udhr_pairs
from tests.helpers import pairs

EN = "All human beings are born free and equal in dignity and rights."
DE = "Alle Menschen sind frei und gleich an Würde und Rechten geboren."
ZH = "人人生而自由，在尊严和权利上一律平等。他们赋有理性和良心，并应以兄弟关系的精神相对待。"


def run_filter(step, table, rank=0):
    out = list(step.run(iter([table]), rank=rank))
    kept = pa.concat_tables(out) if out else table.schema.empty_table()
    removed = pq.read_table(step.removed.folder / step.name / f"run-{rank:05d}.parquet")
    return kept, removed


def test_language_pairs_link_every_language_to_both_pivots_once():
    assert language_pairs(["deu_Latn", "eng_Latn", "zho_Hans"]) == [
        ("deu_Latn", "eng_Latn"),
        ("deu_Latn", "zho_Hans"),
        ("zho_Hans", "eng_Latn"),  # the pivots are linked once
    ]


def test_shards_split_whole_languages():
    langs = ["swh_Latn", "deu_Latn", "fra_Latn", "zho_Hans", "yor_Latn"]
    shards = [languages_of_task(langs, rank, 3) for rank in range(3)]
    assert sorted(x for shard in shards for x in shard) == sorted(langs)  # every language in exactly one task
    assert shards == [languages_of_task(list(reversed(langs)), rank, 3) for rank in range(3)]


def test_align_by_paragraph_or_by_article():
    corpus = load_udhr()
    x = pl.DataFrame({"article": [1, 2, 2], "declaration": ["x"] * 3, "split": ["train"] * 3, "text": ["a", "b1", "b2"]})
    pivot = pl.DataFrame({"article": [1, 2], "declaration": ["p"] * 2, "split": ["train"] * 2, "text": ["A", "B"]})
    assert align(x, pivot) == [("a", "A", "x:a1.p0|p:a1.p0", "train"), ("b1\nb2", "B", "x:a2|p:a2", "train")]
    assert corpus.height > 0


def test_reader_yields_pairs_of_its_shard_with_splits():
    tables = list(udhr_pairs(language_pairs(["deu_Latn", "eng_Latn", "zho_Hans"])))
    table = pa.concat_tables(tables)
    assert table.schema.equals(PAIR_SCHEMA)
    frame = pl.from_arrow(table)
    assert set(zip(frame["src_lang"], frame["tgt_lang"])) == {("deu_Latn", "eng_Latn"), ("deu_Latn", "zho_Hans"), ("zho_Hans", "eng_Latn")}
    assert set(frame["split"]) == {"train", "validation", "test"}
    assert frame["id"].n_unique() == frame.height


def test_normalize():
    table = pairs([("deu_Latn", "  Alle\u00a0 Menschen\x07\n\n\n sind ", "eng_Latn", "Cafe\u0301\ufeff")])
    out = NormalizeText().process(table)
    assert out["src_text"].to_pylist() == ["Alle Menschen\nsind"]
    assert out["tgt_text"].to_pylist() == ["Café"]


def test_pair_filter_reasons(tmp_path):
    table = pairs(
        [
            ("deu_Latn", DE, "eng_Latn", EN),
            ("deu_Latn", "", "eng_Latn", EN),
            ("deu_Latn", EN, "eng_Latn", EN),
            ("deu_Latn", "Ja", "eng_Latn", EN),
            ("deu_Latn", DE * 100, "eng_Latn", EN * 100),
            ("deu_Latn", ZH, "zho_Hans", ZH + "x"),
            ("zho_Hans", ZH, "eng_Latn", EN),  # Han counts three: a normal Chinese/English ratio passes
        ]
    )
    kept, removed = run_filter(PairFilter(RemovedRows(tmp_path), max_chars=4096, max_length_ratio=3.0), table)
    assert kept["src_text"].to_pylist() == [DE, ZH, ZH]
    assert removed.schema.equals(REMOVED_SCHEMA)
    assert removed["reason"].to_pylist() == ["empty", "identical", "length_ratio", "too_long"]
    assert set(removed["stage"].to_pylist()) == {"pair_filter"}


def test_decontamination_drops_train_rows_that_overlap_heldout_text(tmp_path):
    heldout = load_udhr().filter((pl.col("lang") == "eng_Latn") & (pl.col("article") == 26))["text"][0]
    words = heldout.split()
    train = pairs(
        [
            ("deu_Latn", DE, "eng_Latn", EN),
            ("deu_Latn", DE, "eng_Latn", heldout.upper()),  # equal after case folding
            ("deu_Latn", DE, "eng_Latn", f"Quote: {heldout}"),
            ("deu_Latn", DE, "eng_Latn", "So: " + " ".join(words[3:16]) + " and more."),  # shares a 13-word n-gram
        ]
    )
    kept, removed = run_filter(Decontaminate(RemovedRows(tmp_path)), train)
    assert kept["tgt_text"].to_pylist() == [EN]
    assert removed["reason"].to_pylist() == ["overlap:udhr-heldout"] * 3
    assert [d.split()[1] for d in removed["detail"].to_pylist()] == ["equals", "shares", "shares"]  # a long quote shares n-grams
    assert "13-gram" in removed["detail"][2].as_py()
    validation = pairs([("deu_Latn", DE, "eng_Latn", heldout)], split="validation")
    kept, removed = run_filter(Decontaminate(RemovedRows(tmp_path / "v")), validation)
    assert kept.num_rows == 1 and removed.num_rows == 0


def test_overlaps_after_a_text_without_words_and_across_texts():
    """Only runs of evaluation words are hashed and scanned: a missing text (which once shifted the word positions
    of the texts after it), texts without words and runs cut by a text boundary must not move or invent a match."""
    heldout = load_udhr().filter((pl.col("lang") == "eng_Latn") & (pl.col("article") == 26))["text"][0]
    words = heldout.split()
    index = EvalIndex({"udhr": [heldout], "quotes.txt": ["one two three four five six seven"]}, 13)
    texts = [None, "", "...", "Ends with: " + " ".join(words[-13:]), " ".join(words[:7]), " ".join(words[7:13]),
             "one two three four five six seven eight", "x one two three four five six seven", heldout.lower() + "!"]  # fmt: skip
    found = [hit and hit[1].split()[0] for hit in index.overlaps(texts)]
    assert found == [None, None, None, "shares", None, None, "quotes", "quotes", "equals"]
    assert index.overlaps(pl.Series(texts, dtype=pl.String)) == index.overlaps(texts)
    assert index.overlaps(texts[3:4])[0][0] == "udhr" and index.overlaps(texts[6:7])[0][0] == "quotes.txt"
    lowered = pl.Series(texts + ["İSTANBUL ΣΊΣΥΦΟΣ " + heldout.upper()], dtype=pl.String)  # the chat stage lower-cases once itself
    assert index.overlaps(lowered.str.to_lowercase(), lowered=True) == index.overlaps(lowered)


def test_decontamination_against_an_eval_set_file(tmp_path):
    eval_file = tmp_path / "flores-dev.txt"
    eval_file.write_text("Das ist ein Satz aus dem Testset.\n")
    table = pairs(
        [
            ("deu_Latn", "Das ist ein Satz aus dem Testset.", "eng_Latn", "This is a test set sentence."),
            ("deu_Latn", DE, "eng_Latn", EN),
            ("deu_Latn", "Er sagte: das ist ein Satz aus dem Testset!", "eng_Latn", "He said so."),
        ]
    )
    kept, removed = run_filter(Decontaminate(RemovedRows(tmp_path / "r"), eval_sets=[str(eval_file)]), table)
    assert kept["src_text"].to_pylist() == [DE]
    assert removed["reason"].to_pylist() == ["overlap:flores-dev.txt"] * 2
    assert [d.split()[1] for d in removed["detail"].to_pylist()] == ["equals", "quotes"]


def test_language_id_filter_rejects_a_wrong_language_side(tmp_path):
    table = pairs(
        [
            ("deu_Latn", DE, "eng_Latn", EN),
            ("deu_Latn", EN, "eng_Latn", EN + " Really."),  # the "German" side is English
            ("deu_Latn", DE, "zho_Hans", ZH),
            ("chr_Cher", "All of us are equal in rights", "eng_Latn", EN),  # Latin letters for Cherokee
        ]
    )
    kept, removed = run_filter(LanguageIdFilter(RemovedRows(tmp_path)), table)
    assert kept.num_rows == 2
    reasons = removed["reason"].to_pylist()
    assert reasons[0] == "language_id" and reasons[1] in ("language_id", "script")  # English read as such, or Latin letters
    assert removed["detail"][0].as_py().startswith("src: expected deu_Latn, predicted bayling-lid:")
    assert "lid176: eng_Latn" in removed["detail"][0].as_py()


def failed_checks(step: LanguageIdFilter, texts: list[str], lang: str) -> list[str | None]:
    return [failed for failed, _ in step.verdicts(texts, lang)]


def test_language_id_filter_identifies_a_repeated_pivot_text_once_with_the_same_verdicts(tmp_path, monkeypatch):
    english = [EN, "Everyone has the right to life, liberty and security of person.", "Alle Menschen sind frei und gleich."]
    table = pairs([(lang, text, "eng_Latn", english[i % 3]) for i, (lang, text) in
                   enumerate([("deu_Latn", DE), ("deu_Latn", DE + " Wirklich."), ("deu_Latn", EN), ("fra_Latn", "Tous les êtres humains naissent libres.")] * 2)])  # fmt: skip
    fresh = LanguageIdFilter(RemovedRows(tmp_path / "fresh"))
    expected = [fresh.identifier.check([t], lang) for t, lang in zip(table["tgt_text"].to_pylist(), table["tgt_lang"].to_pylist())]
    step = LanguageIdFilter(RemovedRows(tmp_path / "cached"))
    asked = []
    check = step.identifier.check
    monkeypatch.setattr(step.identifier, "check", lambda texts, lang: asked.append((lang, list(texts))) or check(texts, lang))
    for offset in (0, 4):  # the second batch repeats the first one's English texts
        failed, detail = map(list, zip(*step.verdicts(table["tgt_text"].slice(offset, 4).to_pylist(), "eng_Latn")))
        assert failed == [v.failed_check[0] for v in expected[offset : offset + 4]]
        assert detail == [v.detail[0] for v in expected[offset : offset + 4]]
    assert failed.count("language_id") == 1  # the German sentence labelled English
    english_asked = [t for lang, texts in asked if lang == "eng_Latn" for t in texts]
    assert sorted(english_asked) == sorted(english)  # each distinct English text once, over both batches
    assert failed_checks(step, [DE, DE], "deu_Latn") == [None, None] and asked[-1] == ("deu_Latn", [DE])
    assert failed_checks(step, [DE], "deu_Latn") == [None] and asked[-1] == ("deu_Latn", [DE])  # kept for other languages too
    assert LanguageIdFilter.__getstate__(step)["_verdicts"] == {}  # not shipped to the tasks


def test_language_id_filter_starts_from_the_pivot_verdicts_an_earlier_task_shared(tmp_path, monkeypatch):
    pivot_stage = pairs([("zho_Hans", ZH, "eng_Latn", EN), ("zho_Hans", ZH, "eng_Latn", DE)])  # a German "English" side
    first = LanguageIdFilter(RemovedRows(tmp_path / "first"), shared_verdicts=tmp_path / "shared")
    run_filter(first, pivot_stage)
    assert sorted(pl.read_parquet(tmp_path / "shared" / "eng_Latn.parquet")["text"]) == sorted([EN, DE])
    table = pairs([("deu_Latn", DE, "eng_Latn", EN), ("fra_Latn", "Tous les êtres humains naissent libres.", "eng_Latn", DE)])
    alone_kept, alone_removed = run_filter(LanguageIdFilter(RemovedRows(tmp_path / "alone")), table)
    later = LanguageIdFilter(RemovedRows(tmp_path / "later"), shared_verdicts=tmp_path / "shared")
    asked = []
    check = later.identifier.check
    monkeypatch.setattr(later.identifier, "check", lambda texts, lang: asked.append(lang) or check(texts, lang))
    kept, removed = run_filter(later, table)
    assert "eng_Latn" not in asked and asked == ["deu_Latn"]  # the English verdicts were shared; fra_Latn's pivot side failed
    assert kept.equals(alone_kept) and removed.drop(["stage"]).equals(alone_removed.drop(["stage"]))
    assert removed["detail"].to_pylist() == [f"tgt: {first.verdicts([DE], 'eng_Latn')[0][1]}"]


def test_language_id_filter_keeps_a_bounded_number_of_verdicts(tmp_path, monkeypatch):
    from pipelines.steps import language_id

    monkeypatch.setattr(language_id, "VERDICTS_KEPT", 3)
    step = LanguageIdFilter(RemovedRows(tmp_path))
    english = [EN, "Everyone has the right to life, liberty and security of person."]
    assert failed_checks(step, english, "eng_Latn") == [None, None]
    german = [DE, DE + " Wirklich.", EN]
    assert failed_checks(step, german, "deu_Latn") == [None, None, "language_id"]
    assert len(step._verdicts["deu_Latn"]) == 3
    french = ["Tous les êtres humains naissent libres et égaux en dignité et en droits.", DE]
    assert failed_checks(step, french, "fra_Latn") == [None, "language_id"]  # the right answers while starting over
    assert step._verdicts["deu_Latn"] == {} and len(step._verdicts["fra_Latn"]) == 2  # the other languages' share: full
    assert len(step._verdicts["eng_Latn"]) == 2  # a pivot language keeps its own
    assert failed_checks(step, german, "deu_Latn") == [None, None, "language_id"]


def test_language_id_filter_asks_about_a_side_only_where_the_pivot_side_passed(tmp_path, monkeypatch):
    table = pairs([("deu_Latn", DE, "eng_Latn", EN), ("deu_Latn", DE + " Wirklich.", "eng_Latn", DE),  # "English" is German
                   ("fra_Latn", EN, "eng_Latn", "Alle Menschen sind frei und gleich geboren.")])  # both sides wrong  # fmt: skip
    step = LanguageIdFilter(RemovedRows(tmp_path))
    asked = []
    check = step.identifier.check
    monkeypatch.setattr(step.identifier, "check", lambda texts, lang: asked.append((lang, list(texts))) or check(texts, lang))
    kept, removed = run_filter(step, table)
    assert kept["src_text"].to_pylist() == [DE]
    assert [d.split(":")[0] for d in removed["detail"].to_pylist()] == ["tgt", "tgt"]  # the pivot side's verdict
    assert [t for lang, texts in asked if lang != "eng_Latn" for t in texts] == [DE]  # the rest never reached the model


def test_language_id_filter_checks_script_where_no_model_knows_the_language(tmp_path):
    lontara = "ᨔᨗᨊᨗᨊ ᨑᨗᨄᨙᨍᨗ ᨆᨑᨉᨙᨀ"  # Buginese in its own script: no model has a label for it
    table = pairs([("bug_Bugi", lontara, "eng_Latn", EN), ("bug_Bugi", "All of us are equal in rights", "eng_Latn", EN)])
    step = LanguageIdFilter(RemovedRows(tmp_path))
    assert not step.identifier.covers("bug_Bugi")
    kept, removed = run_filter(step, table)
    assert kept.num_rows == 1
    assert removed["reason"].to_pylist() == ["script"]
    assert removed["detail"][0].as_py().startswith("src: 0% of letters in Bugi")


def test_exact_dedup_keeps_the_first_copy(tmp_path):
    table = pairs([("deu_Latn", DE, "eng_Latn", EN), ("deu_Latn", DE.upper(), "eng_Latn", EN), ("deu_Latn", DE, "zho_Hans", ZH)])
    step = ExactPairDedup(RemovedRows(tmp_path))
    kept, removed = run_filter(step, table)
    assert kept["id"].to_pylist() == [table["id"][0].as_py(), table["id"][2].as_py()]
    assert removed["reason"].to_pylist() == ["duplicate"]
    assert table["id"][0].as_py() in removed["detail"][0].as_py()


LONG_EN = "Everyone has the right to education, and education shall be free at least in the elementary and fundamental stages."
LONG_DE = "Jeder hat das Recht auf Bildung, und die Bildung ist unentgeltlich, zum mindesten der Grundschulunterricht und die grundlegende Bildung."
OTHER_EN = "No one shall be held in slavery or servitude; slavery and the slave trade shall be prohibited in all their forms."
OTHER_DE = "Niemand darf in Sklaverei oder Leibeigenschaft gehalten werden; Sklaverei und Sklavenhandel sind in allen ihren Formen verboten."


def test_near_dedup_drops_near_duplicate_pairs_and_keeps_distinct_ones(tmp_path):
    table = pairs(
        [
            ("deu_Latn", LONG_DE, "eng_Latn", LONG_EN),
            ("deu_Latn", OTHER_DE, "eng_Latn", OTHER_EN),
            ("deu_Latn", LONG_DE.replace(", und", " und") + " Ja!", "eng_Latn", "EVERYONE " + LONG_EN[9:] + " Yes!"),  # near copy
            ("deu_Latn", LONG_DE, "eng_Latn", OTHER_EN),  # the same sentence, another translation: not near the first
            ("deu_Latn", LONG_DE, "zho_Hans", ZH),  # another direction
            ("deu_Latn", OTHER_DE + " Niemals.", "eng_Latn", OTHER_EN + " Never."),  # a word more on each side
            ("deu_Latn", "Ja", "eng_Latn", "Yes"),  # short sides are one shingle each
            ("deu_Latn", "Ja.", "eng_Latn", "yes!"),
            ("deu_Latn", "Nein", "eng_Latn", "Yes"),
        ]
    )
    ids = table["id"].to_pylist()
    kept, removed = run_filter(NearDuplicateDedup(RemovedRows(tmp_path), ngram=3), table)
    assert kept["id"].to_pylist() == [ids[0], ids[1], ids[3], ids[4], ids[6], ids[8]]
    assert removed.schema.equals(REMOVED_SCHEMA)
    assert removed["id"].to_pylist() == [ids[2], ids[5], ids[7]]
    assert set(removed["stage"].to_pylist()) == {"near_dedup"} and set(removed["reason"].to_pylist()) == {"near_duplicate"}
    assert removed["detail"].to_pylist() == [f"near-duplicate of {ids[0]}", f"near-duplicate of {ids[1]}", f"near-duplicate of {ids[6]}"]


def test_near_dedup_keeps_the_earliest_pair_across_batches(tmp_path):
    rows = [("deu_Latn", f"{LONG_DE} {'!' * i}", "eng_Latn", LONG_EN + "?" * i) for i in range(4)]  # equal words
    table = pairs(rows)
    step = NearDuplicateDedup(RemovedRows(tmp_path), ngram=3)
    out = list(step.run(iter([table.slice(0, 1), table.slice(1, 2), table.slice(3)])))
    assert sum(t.num_rows for t in out) == 1 and out[0]["id"][0] == table["id"][0]
    removed = pq.read_table(tmp_path / "near_dedup" / "run-00000.parquet")
    assert set(removed["detail"].to_pylist()) == {f"near-duplicate of {table['id'][0].as_py()}"}


def test_minhash_signatures_are_datatroves():
    signer = MinhashSigner(minhash_config(ngram=3, num_buckets=4, hashes_per_bucket=3))
    texts = [LONG_DE, OTHER_DE, ZH]
    hashes, owner = signer.shingles(texts)
    signatures = signer.text_signatures(texts + ["...", ""])
    assert signatures.shape == (5, 12) and (signatures[3:] == MinhashSigner.NONE).all()  # no words, no signature
    for i in range(3):
        expected = signer.stage1.get_signature(hashes[owner == i].reshape(-1, 1))  # datatrove's MinHash stage 1
        assert signatures[i].tolist() == [h for bucket in expected for h in bucket]
    assert len(hashes[owner == 2]) == sum(c.isalpha() for c in ZH) - 2  # each Han character is a word: its 3-grams
    # a pair's signature (its sides' shingles together) is the elementwise minimum of its sides'
    pair = signer.stage1.get_signature(hashes[owner <= 1].reshape(-1, 1))
    assert np.minimum(signatures[0], signatures[1]).tolist() == [h for bucket in pair for h in bucket]


def both_directions(table, seed):
    frame = pl.from_arrow(table)
    return translation_rows(frame.select(pl.all().repeat_by(2).explode()), [False, True] * frame.height, seed)


def test_templates_make_both_directions_in_the_pivot_language():
    table = pairs([("deu_Latn", DE, "eng_Latn", EN), ("deu_Latn", DE, "zho_Hans", ZH)])
    rows = both_directions(table, 1)
    assert rows.schema.equals(INSTRUCTION_SCHEMA)
    frame = pl.from_arrow(rows)
    assert list(zip(frame["src_lang"], frame["tgt_lang"], frame["instruction_lang"])) == [
        ("deu_Latn", "eng_Latn", "eng_Latn"),
        ("eng_Latn", "deu_Latn", "eng_Latn"),
        ("deu_Latn", "zho_Hans", "zho_Hans"),
        ("zho_Hans", "deu_Latn", "zho_Hans"),
    ]
    messages = rows["messages"].to_pylist()
    assert [m["role"] for m in messages[0]] == ["user", "assistant"]
    # phrased in the pivot's language, with the languages' names in it: whichever phrasing the seed drew
    phrasing = [PHRASINGS[pivot][int(template.rsplit(".", 1)[1])] for pivot, template in zip(frame["pivot"], frame["template_id"])]
    assert messages[0][0]["content"] == phrasing[0].format(src="German", tgt="English", text=DE) and messages[0][1]["content"] == EN
    assert messages[2][0]["content"] == phrasing[2].format(src="德语", tgt="中文", text=DE) and messages[3][1]["content"] == DE
    assert frame["id"].n_unique() == 4


def test_translation_rows_are_one_format_and_stable_id_per_row():
    """The column-wise rows equal the per-row contract, on texts with braces, empty and non-ASCII parts."""
    texts = ["", "{src} {text} {}", "人人生而自由。", "Ünïcödé\n\ttext", "a\x1fb", DE]
    rows = [{"id": f"p{i}" if i % 5 else "", "src_lang": ("deu_Latn", "yor_Latn", "zho_Hant")[i % 3], "src_text": texts[i % 6],
             "tgt_lang": ("eng_Latn", "zho_Hans")[i % 2], "tgt_text": texts[(i + 1) % 6] + str(i), "source": ("s", "源")[i % 2],
             "source_id": f"sid{i}", "split": ("train", "test")[i % 2]} for i in range(60)]  # fmt: skip
    reverse = [i % 3 == 0 for i in range(60)]
    table = translation_rows(pl.DataFrame(rows), reverse, 5)
    assert table.schema.equals(INSTRUCTION_SCHEMA)
    for row, backwards, got in zip(rows, reverse, table.to_pylist()):
        pivot = row["tgt_lang"]
        (src, text), (tgt, answer) = ((row["src_lang"], row["src_text"]), (pivot, row["tgt_text"]))[:: -1 if backwards else 1]
        k = choose_phrasing(5, row["id"], f"{src}->{tgt}", len(PHRASINGS[pivot]))
        names = {"eng_Latn": "en", "zho_Hans": "zh"}
        prompt = PHRASINGS[pivot][k].format(src=language_name(src, names[pivot]), tgt=language_name(tgt, names[pivot]), text=text)
        template_id = f"translate.{names[pivot]}.{k:02d}"
        assert got["messages"] == [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        assert got["id"] == stable_id(row["source"], row["source_id"], f"{src}->{tgt}", template_id, prompt, answer)
        assert (got["template_id"], got["src_lang"], got["tgt_lang"], got["pivot"], got["split"]) == (template_id, src, tgt, pivot, row["split"])
    assert translation_rows(pl.DataFrame(rows).head(0), [], 5).num_rows == 0


def test_templates_have_ten_phrasings_each_and_choice_follows_the_seed():
    assert all(len(set(p)) >= 10 for p in PHRASINGS.values())
    table = pairs([("deu_Latn", f"{DE} {i}", "eng_Latn", f"{EN} {i}") for i in range(200)])
    same = both_directions(table, 7)["template_id"].to_pylist()
    assert same == both_directions(table, 7)["template_id"].to_pylist()
    assert len(set(same)) >= 10  # every phrasing gets used
    assert same != both_directions(table, 8)["template_id"].to_pylist()


def udhr_german() -> pl.DataFrame:
    return pl.from_arrow(next(udhr_pairs([("deu_Latn", "eng_Latn")])))


def positions(run: list[dict]) -> list[tuple[str, int]]:
    """(article, paragraph) of each segment, from source ids like deu_1996:a3.p1|eng:a3.p1."""
    return [(p["source_id"].split(":a")[1].split(".p")[0], int(p["source_id"].split("|")[0].rsplit(".p", 1)[1])) for p in run]


def test_ordered_runs_are_consecutive_segments_of_one_document_and_split():
    pairs = udhr_german()
    runs = ordered_runs(positioned(pairs), 2, 3, seed=0, kind="document")
    assert runs and all(2 <= len(run) <= 3 for run in runs)
    for run in runs:
        (article, first), *rest = positions(run)
        assert [p for _, p in positions(run)] == list(range(first, first + len(run)))  # consecutive, in order
        assert {a for a, _ in positions(run)} == {article} and len({p["split"] for p in run}) == 1
    assert {run[0]["split"] for run in runs} == {"train", "validation", "test"}
    # a gap (a segment removed earlier) ends a run; a segment with another split never joins one
    gap = pairs.filter(pl.col("source_id") != "deu_1996:a1.p1|eng:a1.p1")
    gap = gap.with_columns(split=pl.when(pl.col("source_id").str.contains(":a2.p1")).then(pl.lit("validation")).otherwise("split"))
    for run in ordered_runs(positioned(gap), 2, 3, seed=0, kind="document"):
        assert ("1", 1) not in positions(run) and [p for _, p in positions(run)] == list(range(positions(run)[0][1], positions(run)[0][1] + len(run)))
        assert len({p["split"] for p in run}) == 1
    assert ordered_runs(positioned(pairs.with_columns(source_id=pl.lit("test:1"))), 2, 3, 0, "document") == []  # no positions
    # a position on one side only, or not at the end of a side, is no position
    for pattern, replacement in ((r"\.p\d+\|", "|"), (r"\.p\d+$", ""), (r"\.p(\d+)\|", ".p${1}x|")):
        partial = pairs.with_columns(source_id=pl.col("source_id").str.replace(pattern, replacement))
        assert (partial["source_id"] != pairs["source_id"]).any() and ordered_runs(positioned(partial), 2, 3, 0, "document") == []


def test_document_rows_join_the_segments_in_order_and_answer_with_their_translations():
    run = next(r for r in ordered_runs(positioned(udhr_german()), 3, 3, seed=0, kind="document"))
    rows = document_rows([run, run], [False, True], seed=0)
    assert rows.schema.equals(INSTRUCTION_SCHEMA)
    forth, back = rows.to_pylist()
    assert forth["task"] == back["task"] == "translate_document"
    assert (forth["src_lang"], forth["tgt_lang"], back["src_lang"], back["tgt_lang"]) == ("deu_Latn", "eng_Latn", "eng_Latn", "deu_Latn")
    assert [m["role"] for m in forth["messages"]] == ["user", "assistant"]
    assert "\n".join(p["src_text"] for p in run) in forth["messages"][0]["content"]
    assert forth["messages"][1]["content"] == "\n".join(p["tgt_text"] for p in run)
    assert back["messages"][1]["content"] == "\n".join(p["src_text"] for p in run)
    assert forth["source_id"] == ";".join(p["source_id"] for p in run) and forth["split"] == run[0]["split"]
    assert forth["template_id"].startswith("document.en.") and forth["id"] != back["id"]


def test_dialogue_rows_translate_one_segment_a_turn():
    pairs = udhr_german()
    run = next(r for r in ordered_runs(positioned(pairs), 4, 4, seed=0, kind="dialogue"))
    zh = pl.from_arrow(next(udhr_pairs([("deu_Latn", "zho_Hans")])))
    zh_run = next(r for r in ordered_runs(positioned(zh), 2, 2, seed=0, kind="dialogue"))
    (row,), (zh_row,) = dialogue_rows([run], [False], seed=0).to_pylist(), dialogue_rows([zh_run], [True], seed=0).to_pylist()
    messages = row["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 4
    for i, pair in enumerate(run):
        assert pair["src_text"] in messages[2 * i]["content"] and messages[2 * i + 1]["content"] == pair["tgt_text"]
        assert all(other["src_text"] not in messages[2 * i]["content"] for other in run if other is not pair)
    assert "German" in messages[0]["content"] and "English" in messages[0]["content"] and row["task"] == "translate_dialogue"
    assert zh_row["instruction_lang"] == "zho_Hans" and "德语" in zh_row["messages"][0]["content"]
    assert zh_row["messages"][1]["content"] == zh_run[0]["src_text"] and zh_row["src_lang"] == "zho_Hans"


def one_language(step: MixInstructions, pairs: pl.DataFrame, budget: int) -> pa.Table:
    return step.instructions([step.choose(pairs, budget)])[0]


def test_mix_shares_a_budget_among_the_kinds_and_keeps_every_heldout_row(tmp_path):
    pairs = udhr_german()
    templates = Templates(sentence=0.5, document=0.25, dialogue=0.25, segments=[2, 3])
    step = MixInstructions(tmp_path, tmp_path / "plan.json", seed=3, templates=templates)
    frame = pl.from_arrow(one_language(step, pairs, 40))
    train = frame.filter(pl.col("split") == "train")
    assert train.height == 40
    assert dict(train["task"].value_counts().iter_rows()) == {"translation": 20, "translate_document": 10, "translate_dialogue": 10}
    heldout = frame.filter(pl.col("split") != "train")
    assert heldout.filter(pl.col("task") == "translation").height == 2 * pairs.filter(pl.col("split") != "train").height
    assert heldout.filter(pl.col("task") == "translate_document").height > 0
    articles = frame.select("split", article=pl.col("source_id").str.extract_all(r":a(\d+)\.").list.eval(pl.element().str.extract(r"(\d+)").cast(pl.Int32)))
    for split, allowed in {"train": range(0, 25), "validation": range(25, 28), "test": range(28, 31)}.items():
        assert articles.filter(pl.col("split") == split)["article"].explode().is_in(list(allowed)).all()
    assert frame.equals(pl.from_arrow(one_language(step, pairs, 40)))  # the same seed, the same rows
    other = MixInstructions(tmp_path, tmp_path / "plan.json", seed=4, templates=templates)
    assert not frame.equals(pl.from_arrow(one_language(other, pairs, 40)))
    # documents run short: sentences fill the budget
    few = MixInstructions(tmp_path, tmp_path / "plan.json", seed=3, templates=Templates(sentence=0.0, document=1.0, segments=[2, 2]))
    counts = dict(pl.from_arrow(one_language(few, pairs, 80)).filter(pl.col("split") == "train")["task"].value_counts().iter_rows())
    assert sum(counts.values()) == 80 and 0 < counts["translate_document"] < 80


def test_mix_templates_several_languages_at_once_as_one_by_one(tmp_path):
    german = udhr_german()
    french = pl.from_arrow(next(udhr_pairs([("fra_Latn", "zho_Hans")])))
    step = MixInstructions(tmp_path, tmp_path / "plan.json", seed=3, templates=Templates(sentence=0.5, document=0.25, dialogue=0.25, segments=[2, 3]))
    together = step.instructions([step.choose(german, 40), step.choose(french.head(0), 0), step.choose(french, 30)])
    alone = [one_language(step, german, 40), one_language(step, french.head(0), 0), one_language(step, french, 30)]
    assert [t.num_rows for t in together] == [t.num_rows for t in alone] and together[2].num_rows > 30
    assert all(a.equals(b) for a, b in zip(together, alone))


def test_writer_is_atomic(tmp_path):
    writer = AtomicParquetWriter(tmp_path / "x.parquet", PAIR_SCHEMA)
    writer.write(pairs([("deu_Latn", DE, "eng_Latn", EN)]))
    assert not (tmp_path / "x.parquet").exists()  # nothing in place until closed
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_pair_writer_writes_one_file_per_language(tmp_path):
    table = pairs([("deu_Latn", DE, "eng_Latn", EN), ("fra_Latn", "Tous les êtres humains", "eng_Latn", EN), ("deu_Latn", DE, "zho_Hans", ZH)])
    list(PairWriter(tmp_path).run(iter([table]), rank=3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deu_Latn.parquet", "fra_Latn.parquet"]
    assert pq.read_table(tmp_path / "deu_Latn.parquet").num_rows == 2


def test_exact_dedup_caps_pairs_per_sentence(tmp_path):
    table = pairs([("deu_Latn", DE, "eng_Latn", f"{EN} {i}") for i in range(5)])
    kept, removed = run_filter(ExactPairDedup(RemovedRows(tmp_path), max_pairs_per_sentence=3), table)
    assert kept.num_rows == 3
    assert removed["reason"].to_pylist() == ["too_many_translations"] * 2


def test_exact_dedup_finds_copies_across_batches_and_counts_each_side_apart(tmp_path):
    first = pairs([("deu_Latn", "OK", "eng_Latn", "Okay"), ("deu_Latn", DE, "eng_Latn", EN)])
    second = pairs([("deu_Latn", "Gut", "eng_Latn", "ok"),  # "ok" was a source sentence, never a target: no cap
                    ("deu_Latn", DE, "eng_Latn", EN.upper()),  # a copy of the first batch's pair
                    ("deu_Latn", DE, "eng_Latn", "Another translation.")])  # DE has its one pair  # fmt: skip
    step = ExactPairDedup(RemovedRows(tmp_path), max_pairs_per_sentence=1)
    kept = pa.concat_tables(step.run(iter([first, second])))
    removed = pq.read_table(tmp_path / "exact_dedup" / "run-00000.parquet")
    assert kept["src_text"].to_pylist() == ["OK", DE, "Gut"]
    assert removed["reason"].to_pylist() == ["duplicate", "too_many_translations"]
    assert removed["detail"][0].as_py() == f"same pair as {first['id'][1].as_py()}"
    assert removed["detail"][1].as_py() == "the source sentence already has 1 pairs"


def test_a_failing_step_leaves_no_partial_file(tmp_path):
    def broken():
        yield pairs([("deu_Latn", DE, "eng_Latn", EN)])
        raise RuntimeError("killed")

    step = PairFilter(RemovedRows(tmp_path))
    with pytest.raises(RuntimeError):
        list(step.run(broken()))
    assert not any(p.suffix == ".parquet" for p in tmp_path.rglob("*"))


# The chat stage's shortcuts, each against the plain formulation it replaces (on inputs where they could part).
CHAT_TEXTS = [
    "plain ASCII", "", "tab\tand\nnewline", "bell\x07 and nul\x00", "  padded  ", "caf\u00e9", "cafe\u0301", "A\u030a and \u212b",
    "\u1100\u1161\u11a8 jamo", "\uf900 compatibility ideograph", "q\u0307\u0323 marks out of order", ZH, "ascii then e\u0301",
    "\u00a0no-break\u3000ideographic\u2028line", "\r\n\r\n", "x \t \n y", "\u0085next line",
]


def _old_clean(messages: pl.Series) -> pl.Series:
    """The per-list formulation the chat stage used before it worked on the flat column of contents."""
    clean = pl.element().struct.field("content").str.normalize("NFC").str.replace_all(r"[\p{Cc}--[\n\t]]", "").str.strip_chars()
    return pl.select(pl.lit(messages).list.eval(pl.struct(role=pl.element().struct.field("role"), content=clean))).to_series()


def test_chat_nfc_of_the_non_ascii_strings_alone_equals_nfc_of_all():
    from schemas.text.normalize import nfc

    texts = pl.Series(CHAT_TEXTS + [None, "only ascii again"], dtype=pl.String)
    assert nfc(texts).to_list() == texts.str.normalize("NFC").to_list()
    assert nfc(texts).to_list() != texts.to_list()  # some of them do change


def test_chat_contents_cleaned_on_the_flat_column_equal_the_per_list_cleaning():
    from pipelines.chat import as_messages, clean_contents, turns_of

    rows = [[{"role": "user", "content": a}, {"role": "assistant", "content": b}] for a, b in zip(CHAT_TEXTS, reversed(CHAT_TEXTS))]
    rows += [[], [{"role": "system", "content": "\x1b[0m"}], [{"role": "user", "content": "e\u0301"}] * 3]
    messages = pl.Series("messages", rows, dtype=pl.from_arrow(pa.array([], pa.list_(MESSAGE_TYPE))).dtype)
    lengths, role, content = turns_of(messages)
    assert lengths.tolist() == messages.list.len().to_list()
    rebuilt = as_messages(lengths, role, clean_contents(content))
    assert rebuilt.to_list() == _old_clean(messages).to_list()
    assert as_messages(lengths, role, content).to_list() == messages.to_list()


def test_chat_spacing_rewrite_equals_replacing_every_whitespace_run():
    import random

    from schemas.text.normalize import SPACING

    alphabet = ["a", "\u4eba", " ", " ", "\n", "\t", "\r", "\u00a0", "\u3000", "\u2028", "\u0085", "\x0b", "\u200b"]
    generator = random.Random(0)
    texts = pl.Series(CHAT_TEXTS + ["".join(generator.choices(alphabet, k=generator.randint(0, 12))) for _ in range(3000)])
    assert texts.str.replace_all(SPACING, " ").to_list() == texts.str.replace_all(r"\s+", " ").to_list()


def _old_reasons(messages: pl.Series, index) -> pl.DataFrame:
    """The group_by formulation of the chat stage's verdicts, before they were gathered per row in numpy."""
    role, content = pl.element().struct.field("role"), pl.element().struct.field("content")
    lowered = messages.list.eval(pl.struct(role=role, content=content.str.to_lowercase()))
    turns = pl.DataFrame({"lowered": lowered}).select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"), "lowered").explode("lowered")
    turns = turns.select("row", content=pl.col("lowered").struct.field("content"), role=pl.col("lowered").struct.field("role"))
    hits = index.overlaps(turns["content"].fill_null(""), lowered=True)
    turns = turns.with_columns(
        name=pl.Series([h and h[0] for h in hits], dtype=pl.String), how=pl.Series([h and h[1] for h in hits], dtype=pl.String)
    )
    per_row = turns.group_by("row").agg(
        pl.col("name").drop_nulls().first(), pl.col("how").drop_nulls().first(),
        answered=((pl.col("role") == "assistant") & (pl.col("content").str.len_chars() > 0)).any(),
    )  # fmt: skip
    every_row = pl.DataFrame({"row": pl.int_range(len(messages), dtype=pl.UInt32, eager=True)})
    per_row = every_row.join(per_row, on="row", how="left")
    answered = per_row["answered"].fill_null(False)
    return per_row.select(
        reason=pl.when(~answered).then(pl.lit("no_answer")).when(pl.col("name").is_not_null()).then("overlap:" + pl.col("name")),
        detail=pl.when(~answered).then(pl.lit("no non-empty assistant turn"))
        .when(pl.col("name").is_not_null()).then("a turn " + pl.col("how") + " an evaluation text of " + pl.col("name")),
    )  # fmt: skip


def test_chat_verdicts_per_row_equal_the_group_by_formulation():
    from pipelines.chat import turns_of
    from pipelines.steps.prepare_chat import PrepareChat

    heldout = load_udhr().filter((pl.col("lang") == "eng_Latn") & (pl.col("article") == 26))["text"][0]
    index = EvalIndex({"udhr": [heldout], "quotes.txt": ["one two three four five six seven"]}, 13)
    user, answer = {"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there."}
    rows = [
        [user, answer], [], [user], [user, {"role": "assistant", "content": ""}], [{"role": "assistant", "content": "Ok"}],
        [{"role": "user", "content": heldout.upper()}, answer], [user, {"role": "assistant", "content": "So: one two three four five six seven"}],
        [user, answer, {"role": "user", "content": "x one two three four five six seven"}, {"role": "assistant", "content": heldout}],
        [{"role": "user", "content": heldout}], [{"role": "system", "content": "be brief"}, user, answer],
    ]  # fmt: skip
    messages = pl.Series("messages", rows * 3, dtype=pl.from_arrow(pa.array([], pa.list_(MESSAGE_TYPE))).dtype)
    lengths, role, content = turns_of(messages)
    verdict = PrepareChat.reasons(lengths, role, content.str.to_lowercase(), index)
    assert verdict.to_dicts() == _old_reasons(messages, index).to_dicts()
    assert set(verdict["reason"].drop_nulls()) == {"no_answer", "overlap:udhr", "overlap:quotes.txt"}


def test_quotes_are_found_where_a_short_evaluation_text_lies_inside_a_run_of_known_words():
    """Against the definition, on random texts: only runs that start a quote's first words are scanned (by hash), and
    that must not lose a quote, move the first one found in a text, or change its evaluation set."""
    import random

    from schemas.text.overlap import MIN_EXACT_CHARS, word_lists

    generator = random.Random(1)
    vocabulary = ["alpha", "beta", "gamma", "delta", "épée", "中", "文", "한", "x1", "ok"]  # one word each
    keys = {name: [" ".join(generator.choices(vocabulary, k=generator.randint(6, 12))) for _ in range(8)] for name in ("a.txt", "b.txt")}
    texts = []
    for _ in range(600):
        tokens = generator.choices(vocabulary + ["unknown", "未", ",", "!!"], k=generator.randint(0, 40))
        if generator.random() < 0.4:  # plant a quote, maybe cut short by a word no evaluation text has
            at = generator.randint(0, len(tokens))
            tokens[at:at] = generator.choice(keys[generator.choice(list(keys))]).split()
            if generator.random() < 0.3:
                tokens.insert(generator.randint(at + 1, at + 5), "unknown")
        texts.append(" ".join(tokens))
    expected = []
    for text in texts:
        form, first = f" {' '.join(word_lists([text])['words'][0].to_list())} ", None
        for name, short in keys.items():
            for key in short:
                if (at := form.find(f" {key} ")) != -1:
                    first = min(first or ((at + len(key), -len(key)), name), ((at + len(key), -len(key)), name))  # earliest end, longest
        equal = next((name for name, short in keys.items() if form in {f" {k} " for k in short}), None)
        if equal and len(form.replace(" ", "")) >= MIN_EXACT_CHARS:
            expected.append((equal, "equals"))
        else:
            expected.append(first and (first[1], "quotes"))
    found = EvalIndex(keys, 13).overlaps(texts)
    assert sum(h is not None and h[1] == "quotes" for h in found) > 100
    assert found == expected


def test_stable_ids_of_a_column_are_stable_id_of_each_row():
    parts = [("", ""), ("a", "b"), ("人人生而自由。", "Ünïcödé\n"), ("a\x1fb", "c"), ("x" * 5000, "y")]
    joined = pl.Series("joined", ["\x1f".join(p) for p in parts])
    assert stable_ids(joined).to_list() == [stable_id(*p) for p in parts]
    assert stable_digests(joined).to_list() == [bytes.fromhex(stable_id(*p)) for p in parts]
    # the contract is XXH3-128 as 32 hex digits: the reference vector of the empty input
    assert stable_id("") == "99aa06d3014798d86001c324468d497f"
