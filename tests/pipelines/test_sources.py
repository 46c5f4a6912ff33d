"""Every source format read from small real files."""

import json

import polars as pl
import polib
import pyarrow as pa
import pytest

from pipelines.sources import GettextSource, InstructionSource, MosesSource, SourceError, TableSource, TmxSource, UdhrSource, orient

DE = ["Alle Menschen sind frei.", "Jeder hat das Recht auf Leben."]
EN = ["All human beings are free.", "Everyone has the right to life."]


def read_all(source, langs):
    tables = list(source.read(set(langs)))
    return pl.from_arrow(pa.concat_tables(tables)) if tables else pl.DataFrame()


def test_orient_puts_the_pivot_on_the_target_side():
    frame = pl.DataFrame({"src_lang": ["eng_Latn", "deu_Latn", "eng_Latn", "deu_Latn"], "tgt_lang": ["deu_Latn", "eng_Latn", "zho_Hans", "fra_Latn"],
                          "src_text": ["e", "d", "e2", "d2"], "tgt_text": ["d", "e", "z", "f"]})  # fmt: skip
    out = orient(frame)
    assert list(zip(out["src_lang"], out["tgt_lang"], out["src_text"])) == [
        ("deu_Latn", "eng_Latn", "d"), ("deu_Latn", "eng_Latn", "d"), ("zho_Hans", "eng_Latn", "z")
    ]  # fmt: skip


def test_moses_files(tmp_path):
    (tmp_path / "corpus.en").write_text("\n".join(EN) + "\n")
    (tmp_path / "corpus.de").write_text("\n".join(DE) + "\n")
    source = MosesSource(name="m", files={"en": str(tmp_path / "corpus.en"), "de": str(tmp_path / "corpus.de")})
    assert source.languages() == {"deu_Latn"}
    rows = read_all(source, ["deu_Latn"])
    assert rows["src_text"].to_list() == DE and rows["tgt_text"].to_list() == EN
    assert rows["source_id"].to_list() == ["corpus.en:1", "corpus.en:2"]
    (tmp_path / "corpus.de").write_text(DE[0] + "\n")
    with pytest.raises(SourceError, match=r"corpus.en has 2 lines but .*corpus.de has 1"):
        read_all(source, ["deu_Latn"])


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "tsv"])
def test_table_files_with_column_mapping(tmp_path, fmt):
    frame = pl.DataFrame({"de": DE, "en": EN, "key": ["a", "b"]})
    path = tmp_path / f"pairs.{fmt}"
    {"parquet": frame.write_parquet, "jsonl": frame.write_ndjson, "tsv": lambda p: frame.write_csv(p, separator="\t")}[fmt](path)
    source = TableSource(name="t", format=fmt, path=str(path), columns={"src_text": "de", "tgt_text": "en", "source_id": "key"},
                         src_lang="de", tgt_lang="en")  # fmt: skip
    assert source.languages() == {"deu_Latn"}
    rows = read_all(source, ["deu_Latn"])
    assert rows["src_text"].to_list() == DE and rows["source_id"].to_list() == ["pairs." + fmt + ":a", "pairs." + fmt + ":b"]
    assert read_all(source, ["fra_Latn"]).height == 0


def test_table_file_missing_column_is_named(tmp_path):
    pl.DataFrame({"de": DE}).write_parquet(tmp_path / "x.parquet")
    source = TableSource(name="t", path=str(tmp_path / "x.parquet"), columns={"src_text": "de"}, src_lang="de", tgt_lang="en")
    with pytest.raises(SourceError, match=r"x.parquet has no column 'tgt_text'"):
        read_all(source, ["deu_Latn"])


def test_tmx(tmp_path):
    tus = "".join(
        f'<tu tuid="{i}"><tuv xml:lang="en"><seg>{e}</seg></tuv><tuv xml:lang="de-DE"><seg>{d}</seg></tuv>'
        f'<tuv xml:lang="zh-CN"><seg>人人{i}</seg></tuv></tu>'
        for i, (d, e) in enumerate(zip(DE, EN))
    )
    (tmp_path / "m.tmx").write_text(f'<?xml version="1.0"?><tmx version="1.4"><header/><body>{tus}</body></tmx>')
    source = TmxSource(name="x", path=str(tmp_path / "m.tmx"))
    assert source.languages() == {"deu_Latn", "zho_Hans"}
    rows = read_all(source, ["deu_Latn"])
    assert set(zip(rows["tgt_lang"], rows["src_text"])) == {("eng_Latn", DE[0]), ("eng_Latn", DE[1]), ("zho_Hans", DE[0]), ("zho_Hans", DE[1])}
    (tmp_path / "bad.tmx").write_text("<tmx><body><tu>")
    with pytest.raises(SourceError, match="bad.tmx: not valid TMX"):
        TmxSource(name="x", path=str(tmp_path / "bad.tmx")).languages()


@pytest.mark.parametrize("suffix", [".po", ".mo"])
def test_gettext_catalogs(tmp_path, suffix):
    catalog = polib.POFile()
    for d, e in zip(DE, EN):
        catalog.append(polib.POEntry(msgid=e, msgstr=d))
    catalog.append(polib.POEntry(msgid="Untranslated", msgstr=""))
    catalog.append(polib.POEntry(msgid="Fuzzy", msgstr="Unscharf", flags=["fuzzy"]))
    path = tmp_path / f"de{suffix}"
    catalog.save(str(path)) if suffix == ".po" else catalog.save_as_mofile(str(path))
    rows = read_all(GettextSource(name="g", path=str(path), lang="de"), ["deu_Latn"])
    assert sorted(rows["src_text"].to_list()) == sorted(DE) and set(rows["tgt_lang"]) == {"eng_Latn"}


@pytest.mark.parametrize(
    "fmt, record",
    [
        ("alpaca", {"instruction": "Sag hallo", "input": "auf Deutsch", "output": "Hallo"}),
        ("belle", {"question": "你好吗", "std_answer": "很好"}),
        ("sharegpt", {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}),
        ("messages", {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}),
    ],
)
def test_instruction_formats(tmp_path, fmt, record):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n")
    table = pa.concat_tables(InstructionSource(format=fmt, path=str(path), lang="en", name=fmt).read())
    messages = table["messages"][0].as_py()
    assert [m["role"] for m in messages] == ["user", "assistant"] and all(m["content"] for m in messages)
    assert table["lang"][0].as_py() == "eng_Latn"
    if fmt == "alpaca":
        assert messages[0]["content"] == "Sag hallo\n\nauf Deutsch"


def test_instruction_errors_name_the_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "Hi"}]}\n{not json\n')
    with pytest.raises(SourceError, match=r"rows.jsonl, line 2: not valid JSON"):
        list(InstructionSource(format="messages", path=str(path), lang="en").read())
    path.write_text('{"instruction": "x"}\n')
    with pytest.raises(SourceError, match=r"rows.jsonl, line 1: not a alpaca record: missing or bad key 'output'"):
        list(InstructionSource(format="alpaca", path=str(path), lang="en").read())


def test_instruction_chunks_cut_at_line_ends_and_number_their_first_line(tmp_path):
    """A chunk runs from its start to the end of the line in which `size` bytes fall (a cut right after a newline
    still takes the next line); together the chunks cover the file once; an empty file has none."""
    path = tmp_path / "rows.jsonl"
    data = "a\n\nbé\nccc\r\n\nlast".encode()
    path.write_bytes(data)
    for size in (1, 2, 3, 4, 6, 100):
        expected, start = [], 0
        while start < len(data):
            cut = data.find(b"\n", start + size) if start + size < len(data) else -1
            end = len(data) if cut == -1 else cut + 1
            expected.append((str(path), start, end, data[:start].count(b"\n") + 1))
            start = end
        assert InstructionSource(path=str(path)).chunks(size) == expected, size
    assert [c[1:3] for c in InstructionSource(path=str(path)).chunks(2)][:2] == [(0, 3), (3, 7)]  # 2 bytes end a line: the next joins
    path.write_bytes(b"")
    assert InstructionSource(path=str(path)).chunks(4) == []


def test_messages_chunks_parsed_by_arrow_match_the_line_by_line_reading(tmp_path):
    """JSONL `messages` chunks go through Arrow's JSON reader; any record it cannot take whole sends the chunk
    to the line-by-line path. Both give the same rows: ids from the record or file:line (blank lines count)."""
    records = [
        {"id": "a", "lang": "de", "messages": [{"role": "user", "content": "Hallo ä"}, {"role": "assistant", "content": "Hi", "name": "x"}]},
        {"lang": "zh", "messages": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "好"}], "extra": 1},
        {"id": "", "lang": "en", "messages": [{"role": "user", "content": "Hi"}]},
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records[:2]) + "\n\n" + json.dumps(records[2]) + "\n")
    source = InstructionSource(format="messages", path=str(path), name="m")
    (chunk,) = source.chunks()
    parsed = source._parse_messages(chunk)
    assert parsed is not None and parsed.equals(pa.concat_tables(source._read_records(chunk)))
    assert parsed["source_id"].to_pylist() == ["a", "rows.jsonl:2", "rows.jsonl:4"]
    assert parsed["lang"].to_pylist() == ["deu_Latn", "zho_Hans", "eng_Latn"]
    path.write_text(json.dumps(records[0]) + "\n" + json.dumps({"lang": "en", "messages": [{"role": "user"}]}) + "\n")
    assert source._parse_messages(source.chunks()[0]) is None  # a turn without content: the line path names it
    with pytest.raises(SourceError, match=r"rows.jsonl, line 2: .*'content'"):
        list(source.read())


def test_sources_say_whether_they_can_have_pairs_without_a_pivot(tmp_path):
    de, fr, en = (tmp_path / n for n in ("c.de", "c.fr", "c.en"))
    for path in (de, fr, en):
        path.write_text("a\nb\n")
    assert MosesSource(name="m", files={"de": str(de), "fr": str(fr)}).has_unpaired()
    assert not MosesSource(name="m", files={"de": str(de), "en": str(en)}).has_unpaired()
    rows = pa.concat_tables(MosesSource(name="m", files={"de": str(de), "fr": str(fr)}).read(set(), unpaired=True))
    assert rows.num_rows == 2 and set(rows["tgt_lang"].to_pylist()) == {"fra_Latn"}
    assert not list(MosesSource(name="m", files={"de": str(de), "fr": str(fr)}).read({"deu_Latn"}))  # no pivot: no pair
    assert not UdhrSource().has_unpaired()


def test_table_source_reads_only_the_files_that_hold_the_languages_asked(tmp_path):
    for lang, texts in (("de", DE), ("fr", ["Tous sont libres.", "Chacun a droit à la vie."])):
        pl.DataFrame({"src_text": texts, "tgt_text": EN, "src_lang": [lang] * 2, "tgt_lang": ["en"] * 2}).write_parquet(tmp_path / f"{lang}-en.parquet")
    pl.DataFrame({"src_text": ["Colour"], "tgt_text": ["Color"], "src_lang": ["en-GB"], "tgt_lang": ["en-US"]}).write_parquet(tmp_path / "en-en.parquet")
    source = TableSource(name="t", path=str(tmp_path / "*.parquet"))
    assert source.languages() == {"deu_Latn", "fra_Latn"}
    assert source.has_unpaired()
    (tmp_path / "fr-en.parquet").write_bytes(b"not parquet any more")  # so reading it fails
    assert read_all(source, ["deu_Latn"])["src_text"].to_list() == DE  # the French file is not opened
    unpaired = pl.from_arrow(pa.concat_tables(source.read(set(), unpaired=True)))
    assert unpaired.height == 1 and {unpaired["src_text"][0], unpaired["tgt_text"][0]} == {"Colour", "Color"}
    with pytest.raises(SourceError, match="fr-en.parquet"):
        read_all(source, ["fra_Latn"])
    only_paired = TableSource(name="t", path=str(tmp_path / "de-en.parquet"))
    only_paired.languages()
    assert not only_paired.has_unpaired()
