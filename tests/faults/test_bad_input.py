"""Malformed input, format by format: every reader names the file and line (row group and row for Parquet) of a
bad record. By default the record goes to the reading stage's removed/ as `malformed` and the build goes on;
strict (`strict: true`, `--strict`) stops at the first one with one line naming it; a bad file (a .po syntax
error, a broken .mo) stops the build before anything is written. No good record's text changes on the way.

Most cases run the reading step alone through datatrove's LocalPipelineExecutor, so the table stays cheap; the
strict and bad-file cases and one default case run the whole build. The tally of handled cases is printed at the
end of the module."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import polars as pl
import polib
import pyarrow as pa
import pytest
from datatrove.executor import LocalPipelineExecutor

from pipelines.batch import RemovedRows
from pipelines.planning import chat_chunks
from pipelines.sources import GettextSource, InstructionSource, SourceError, TableSource, first_malformed
from pipelines.steps.prepare_chat import PrepareChat
from pipelines.steps.read_pairs import PairReader
from pipelines.steps.write import PairWriter

DE = ["Alle Menschen sind frei und gleich an Würde geboren.", "Jeder hat das Recht auf Leben.", "Niemand darf gefoltert werden."]
EN = ["All human beings are born free and equal in dignity.", "Everyone has the right to life.", "No one shall be subjected to torture."]
HEADER = "src_text\ttgt_text\n"
GOOD_TSV = [f"{d}\t{e}\n" for d, e in zip(DE, EN)]


def tsv(*middle: str, tail: str = "") -> bytes:
    """The good rows with `middle` lines after the first one."""
    return (HEADER + GOOD_TSV[0] + "".join(middle) + "".join(GOOD_TSV[1:]) + tail).encode()


def jsonl(*middle: str) -> bytes:
    good = [json.dumps({"src_text": d, "tgt_text": e}, ensure_ascii=False) + "\n" for d, e in zip(DE, EN)]
    return (good[0] + "".join(middle) + "".join(good[1:])).encode()


def parquet_with_null(path: Path) -> None:
    """Two row groups of two rows; the second group's first row has no German text."""
    pl.DataFrame({"src_text": [DE[0], DE[1], None, DE[2]], "tgt_text": [EN[0], EN[1], "Lost.", EN[2]]}).write_parquet(path, row_group_size=2)


def parquet_with_languages(path: Path, src_langs: list) -> None:
    """The good rows with `src_lang` and `tgt_lang` columns; one bad language among them (its row's text "Lost.")."""
    texts = iter(DE)
    src = [next(texts) if lang == "de" else "Lost." for lang in src_langs]
    tgt = [EN[DE.index(t)] if t in DE else "Lost." for t in src]
    pl.DataFrame({"src_text": src, "tgt_text": tgt, "src_lang": src_langs, "tgt_lang": ["en"] * 4}).write_parquet(path, row_group_size=2)


# name: (format, file content or writer, the place of the malformed record, or None where nothing is malformed)
PAIR_CASES = {
    "tsv blank line in the middle": ("tsv", tsv("\n"), "line 3"),
    "tsv trailing blank lines": ("tsv", tsv(tail="\n\n"), None),
    "tsv short row": ("tsv", tsv("nur eine Spalte\n"), "line 3"),
    "tsv long row": ("tsv", tsv("eins\tzwei\tdrei\n"), "line 3"),
    "tsv invalid UTF-8": ("tsv", tsv("LATIN-1\tGreetings\n").replace(b"LATIN-1", "Grüße".encode("latin-1")), "line 3"),
    "jsonl null text": ("jsonl", jsonl('{"src_text": null, "tgt_text": "Lost."}\n'), "line 2"),
    "jsonl numeric text": ("jsonl", jsonl('{"src_text": 42, "tgt_text": "Forty-two."}\n'), "line 2"),
    "jsonl not JSON": ("jsonl", jsonl('{"src_text": "Hallo\n'), "line 2"),
    "jsonl not an object": ("jsonl", jsonl('["Hallo", "Hello"]\n'), "line 2"),
    "parquet null text": ("parquet", parquet_with_null, "row group 1, row 0"),
    "parquet unknown language code": ("parquet", lambda path: parquet_with_languages(path, ["de", "de", "xx-nope", "de"]), "row group 1, row 0"),
    "parquet null language": ("parquet", lambda path: parquet_with_languages(path, ["de", None, "de", "de"]), "row group 0, row 1"),
}


@pytest.fixture(scope="module")
def cases(request):
    """Every case run in this module: handled (True) or not (its test failed before the end)."""
    handled: dict[str, bool] = {}
    yield handled
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():  # shown whatever the capture mode, once per run of the module
        print(f"\nbad-input cases handled: {sum(handled.values())} of {len(handled)}")


@pytest.fixture
def tally(cases, request):
    """Call it at the end of a case: the case counts as handled only if its test got there."""
    cases[request.node.name] = False
    return lambda: cases.__setitem__(request.node.name, True)


def write_case(folder: Path, fmt: str, content) -> Path:
    path = folder / f"pairs.{fmt}"
    content(path) if callable(content) else path.write_bytes(content)
    return path


def pair_source(fmt: str, path: Path, case: str) -> TableSource:
    """Fixed languages, unless the case is about the file's own language columns."""
    fixed = {} if "language" in case else {"src_lang": "de", "tgt_lang": "en"}
    return TableSource(name="t", format=fmt, path=str(path), **fixed)


def run_pair_reader(tmp_path: Path, source: TableSource) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept pairs, removed rows) of the reading step run by a real executor, after the driver's `languages()`."""
    languages = source.languages()
    removed = RemovedRows(tmp_path / "removed", "pairs")
    pipeline = [PairReader([source], ["deu_Latn"], [languages], removed), PairWriter(tmp_path / "pairs")]
    LocalPipelineExecutor(pipeline, tasks=1, workers=1, logging_dir=str(tmp_path / "logs")).run()
    kept = pl.read_parquet(tmp_path / "pairs" / "deu_Latn.parquet")
    return kept, pl.read_parquet(list((tmp_path / "removed" / "read_pairs").glob("*.parquet")))


@pytest.mark.parametrize("case", PAIR_CASES)
def test_pair_readers_send_a_malformed_record_to_removed_and_go_on(tmp_path, tally, case):
    fmt, content, place = PAIR_CASES[case]
    path = write_case(tmp_path, fmt, content)
    kept, removed = run_pair_reader(tmp_path, pair_source(fmt, path, case))
    assert kept["src_text"].to_list() == DE and kept["tgt_text"].to_list() == EN  # 0 silent changes, none lost
    if place is None:
        assert removed.height == 0
    else:
        assert removed.height == 1 and removed["reason"].to_list() == ["malformed"] and removed["stage"].to_list() == ["read_pairs"]
        assert removed["detail"][0].startswith(f"pairs.{fmt}, {place}: "), removed["detail"][0]
        assert removed["source_id"][0] == f"pairs.{fmt}:{place}"
        assert removed["src_lang"][0] == ("" if "language" in case else "deu_Latn")  # a bad language is not guessed
    tally()


@pytest.mark.parametrize("case", [name for name, (_, _, place) in PAIR_CASES.items() if place])
def test_strict_stops_at_the_first_malformed_pair_naming_file_and_line(tmp_path, tally, case):
    fmt, content, place = PAIR_CASES[case]
    path = write_case(tmp_path, fmt, content)
    source = pair_source(fmt, path, case)
    source.languages()
    with pytest.raises(SourceError) as raised:
        first_malformed([source], [])
    assert f"{path}, {place}: " in str(raised.value) and "\n" not in str(raised.value)
    tally()


def test_strict_build_exits_with_one_line_and_writes_nothing(tmp_path, capsys, tally):
    """The whole build: `--strict` on the command line, and `strict: true` in the recipe; a pair file, and an
    instruction file (checked by the driver too: in a task it would stop with a task's traceback around the line)."""
    from pipelines.build import main

    path = write_case(tmp_path, "tsv", tsv("nur eine Spalte\n"))
    chat_path, _ = write_chat(tmp_path, "alpaca null output")
    pairs = f"parallel:\n  - {{type: tsv, path: '{path}', src_lang: de, tgt_lang: en, name: t}}\n"
    chat = f"instructions:\n  - {{format: alpaca, path: '{chat_path}', lang: en, name: c}}\n"
    recipe = tmp_path / "r.yaml"
    for strict_key, flag, sources, named in (("", ["--strict"], pairs, f"{path}, line 3: "), ("strict: true\n", [], pairs, f"{path}, line 3: "),
                                             ("", ["--strict"], chat, f"{chat_path}, line 2: ")):  # fmt: skip
        recipe.write_text(f"name: faults\n{strict_key}{sources}")
        code = main(["--recipe", str(recipe), "--output", str(tmp_path / "out"), "--tasks", "1", "--workers", "1", *flag])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and named in lines[0], lines
        assert not (tmp_path / "out").exists() and not (tmp_path / ".out.partial").exists()
    tally()


def test_well_formed_text_is_kept_to_the_byte(tmp_path, tally):
    """What strict parsing must not touch: spaces at either end, an empty last field, CRLF line ends (a malformed
    line sends the file down the line-by-line path, which must keep the same texts)."""
    texts = [(" Ja ", "Yes "), ("Leer", ""), ("Tab\u00a0Ende", "Tab end")]
    body = "".join(f"{d}\t{e}\n" for d, e in texts)
    for name, content, malformed in (("clean", HEADER + body, 0), ("crlf", (HEADER + body).replace("\n", "\r\n"), 0),
                                     ("crlf with a short row", (HEADER + "kurz\n" + body).replace("\n", "\r\n"), 1)):  # fmt: skip
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        path = write_case(folder, "tsv", content.encode())
        source = TableSource(name="t", format="tsv", path=str(path), src_lang="de", tgt_lang="en")
        source.languages()
        rows = pl.from_arrow(pa.concat_tables(source.read({"deu_Latn"})))
        assert list(zip(rows["src_text"], rows["tgt_text"])) == texts, name
        assert len(source.malformed()) == malformed, name
    tally()


@pytest.mark.parametrize("case", ["moses invalid UTF-8", "tmx not XML"])
def test_other_pair_formats_name_the_line_of_a_bad_file(tmp_path, capsys, tally, case):
    """Both stop the build before anything is written. Moses: a line left out would pair every later line with the
    wrong one, so a bad line is a bad file."""
    from pipelines.build import main

    if case.startswith("moses"):
        bad = tmp_path / "c.de"
        bad.write_bytes("\n".join(DE).encode().replace(b"Leben", b"Leb\xe9n") + b"\n")
        (tmp_path / "c.en").write_text("\n".join(EN) + "\n")
        source, named = f"{{type: moses, files: {{de: '{bad}', en: '{tmp_path / 'c.en'}'}}, name: m}}", f"{bad}, line 2: "
    else:
        bad = tmp_path / "m.tmx"
        bad.write_text('<tmx version="1.4"><body>\n<tu><tuv xml:lang="de"><seg>Hallo</seg></tuv>\n</body></tmx>\n')
        source, named = f"{{type: tmx, path: '{bad}', name: x}}", "line 3"
    (tmp_path / "r.yaml").write_text(f"name: faults\nparallel:\n  - {source}\n")
    code = main(["--recipe", str(tmp_path / "r.yaml"), "--output", str(tmp_path / "out"), "--tasks", "1", "--workers", "1"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and str(bad) in lines[0] and named in lines[0], lines
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.partial").exists()
    tally()


# --- gettext: a syntax error is a bad file --------------------------------------------------------------------------

PO_HEADER = 'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
PO_GOOD = 'msgid "All are free."\nmsgstr "Alle sind frei."\n\n'


def mo_bytes() -> bytes:
    catalog = polib.POFile()
    catalog.append(polib.POEntry(msgid="Meadow.", msgstr="Wiese."))
    catalog.metadata = {"Content-Type": "text/plain; charset=UTF-8"}
    return catalog.to_binary()


def mo_with(offset_field: int, value: int) -> bytes:
    data = bytearray(mo_bytes())
    data[offset_field : offset_field + 4] = struct.pack("<I", value)
    return bytes(data)


# name: (suffix, content, what the one line of the error names besides the file)
GETTEXT_CASES = {
    "po unclosed string": (".po", PO_HEADER + PO_GOOD + 'msgid "Meadow."\nmsgstr "Wiese.\n', "line 9"),
    "po unquoted string": (".po", PO_HEADER + 'msgid "The weather"\nmsgstr Das Wetter\n\n' + PO_GOOD, "line 6"),
    "po continuation without keyword": (".po", PO_HEADER + '"stray"\n' + PO_GOOD, "line 5"),
    "po invalid UTF-8": (".po", (PO_HEADER + PO_GOOD).encode() + b'msgid "x"\nmsgstr "\xff"\n', "line 9"),
    "mo bad magic": (".mo", b"\x00\x00\x00\x00" + mo_bytes()[4:], "magic number"),
    "mo table past the end": (".mo", mo_with(12, 1 << 20), "original table"),
    "mo string past the end": (".mo", mo_bytes()[:-8], "entry"),
}


@pytest.mark.parametrize("case", GETTEXT_CASES)
def test_a_bad_catalog_stops_the_build_before_anything_is_written(tmp_path, capsys, tally, case):
    from pipelines.build import main

    suffix, content, named = GETTEXT_CASES[case]
    path = tmp_path / f"de{suffix}"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    (tmp_path / "r.yaml").write_text(f"name: faults\nparallel:\n  - {{type: gettext, path: '{path}', lang: de, name: g}}\n")
    code = main(["--recipe", str(tmp_path / "r.yaml"), "--output", str(tmp_path / "out"), "--tasks", "1", "--workers", "1"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and str(path) in lines[0] and named in lines[0], lines
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.partial").exists()
    tally()


def test_a_valid_catalog_is_read_whole(tmp_path, tally):
    """The strict check refuses no valid syntax: continued strings, escapes, context, plurals, obsolete entries."""
    text = PO_HEADER + (
        '#: a.c:1\nmsgctxt "menu"\nmsgid ""\n"The weather "\n"today."\nmsgstr ""\n"Das Wetter "\n"heute."\n\n'
        'msgid "Say \\"hi\\"\\tnow"\nmsgstr "Sag \\"hallo\\"\\tjetzt"\n\n'
        'msgid "one file"\nmsgid_plural "%d files"\nmsgstr[0] "eine Datei"\nmsgstr[1] "%d Dateien"\n\n'
        '#~ msgid "Old."\n#~ msgstr "Alt."\n\n' + PO_GOOD.rstrip("\n") + "\n"
    )  # fmt: skip
    (tmp_path / "de.po").write_text(text)
    source = GettextSource(name="g", path=str(tmp_path / "de.po"), lang="de")
    rows = pl.from_arrow(pa.concat_tables(source.read({"deu_Latn"})))
    assert sorted(zip(rows["src_text"], rows["tgt_text"])) == sorted(
        [("Das Wetter heute.", "The weather today."), ('Sag "hallo"\tjetzt', 'Say "hi"\tnow'), ("Alle sind frei.", "All are free.")]
    )
    (tmp_path / "de.mo").write_bytes(mo_bytes())
    rows = pl.from_arrow(pa.concat_tables(GettextSource(name="g", path=str(tmp_path / "de.mo"), lang="de").read({"deu_Latn"})))
    assert rows["src_text"].to_list() == ["Wiese."] and rows["tgt_text"].to_list() == ["Meadow."]
    tally()


# --- instructions -----------------------------------------------------------------------------------------------

GOOD_CHAT = [{"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}]} for i in range(3)]


def alpaca(output) -> dict:
    return {"instruction": "Say hi", "input": "", "output": output}


# name: (format, a bad record (a dict, or a raw line), the file's suffix)
CHAT_CASES = {
    "messages null answer": ("messages", {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": None}]}, ".jsonl"),
    "messages numeric answer": ("messages", {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": 42}]}, ".jsonl"),
    "messages not JSON": ("messages", '{"messages": [', ".jsonl"),
    "messages invalid UTF-8": ("messages", b'{"messages": "\xff"}', ".jsonl"),
    "alpaca null output": ("alpaca", alpaca(None), ".jsonl"),
    "alpaca numeric output": ("alpaca", alpaca(7), ".jsonl"),
    "alpaca null output, JSON array": ("alpaca", alpaca(None), ".json"),
    "sharegpt null value": ("sharegpt", {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": None}]}, ".jsonl"),
}


def good_record(fmt: str, record: dict) -> dict:
    question, answer = (m["content"] for m in record["messages"])
    if fmt == "alpaca":
        return {"instruction": question, "input": "", "output": answer}
    if fmt == "sharegpt":
        return {"conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]}
    return record


def write_chat(folder: Path, case: str) -> tuple[Path, str]:
    """The good records with the case's bad one second; its place ("line 2", or "record 2" in a JSON array)."""
    fmt, bad, suffix = CHAT_CASES[case]
    good = [good_record(fmt, r) for r in GOOD_CHAT]
    path = folder / f"chat{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps([good[0], bad, *good[1:]]))
        return path, "record 2"
    raw = bad if isinstance(bad, bytes) else (bad if isinstance(bad, str) else json.dumps(bad)).encode()
    path.write_bytes(b"\n".join([json.dumps(good[0]).encode(), raw, *(json.dumps(r).encode() for r in good[1:])]) + b"\n")
    return path, "line 2"


def run_prepare_chat(tmp_path: Path, source: InstructionSource, strict: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(kept rows, removed rows) of the instruction reading stage run by a real executor."""
    step = PrepareChat([source], chat_chunks([source]), tmp_path / "work", [], 13, strict)
    LocalPipelineExecutor([step], tasks=1, workers=1, logging_dir=str(tmp_path / "logs")).run()
    kept = pl.read_parquet(list((tmp_path / "work" / "chat_parts").glob("*/*.parquet"))).sort("order")
    return kept, pl.read_parquet(list((tmp_path / "work" / "removed" / "chat").glob("*.parquet")))


@pytest.mark.parametrize("case", CHAT_CASES)
def test_instruction_readers_send_a_malformed_record_to_removed_and_go_on(tmp_path, tally, case):
    path, place = write_chat(tmp_path, case)
    kept, removed = run_prepare_chat(tmp_path, InstructionSource(format=CHAT_CASES[case][0], path=str(path), lang="en", name="c"), strict=False)
    contents = [[m["content"] for m in turns] for turns in kept["messages"].to_list()]
    assert contents == [[m["content"] for m in r["messages"]] for r in GOOD_CHAT]  # 0 silent changes, none lost
    assert removed["reason"].to_list() == ["malformed"], removed
    assert removed["detail"][0].startswith(f"{path.name}, {place}: "), removed["detail"][0]
    tally()


@pytest.mark.parametrize("case", CHAT_CASES)
def test_strict_instruction_reading_stops_naming_file_and_line(tmp_path, tally, case):
    path, place = write_chat(tmp_path, case)
    with pytest.raises(SourceError) as raised:
        run_prepare_chat(tmp_path, InstructionSource(format=CHAT_CASES[case][0], path=str(path), lang="en", name="c"), strict=True)
    assert str(raised.value).startswith(f"{path}, {place}: ") and "\n" not in str(raised.value), str(raised.value)
    tally()


# --- the whole build, default mode ----------------------------------------------------------------------------------


def test_build_goes_on_with_malformed_records_in_removed(tmp_path, tally):
    """A TSV with a short row and a blank line, instructions with a null answer: the build finishes, and the
    published removed/ files and the manifest count each as `malformed`, with file and line."""
    from pipelines.build import main

    tsv_path = write_case(tmp_path, "tsv", tsv("\n", "nur eine Spalte\n", tail="\n"))
    chat_path, _ = write_chat(tmp_path, "messages null answer")
    (tmp_path / "r.yaml").write_text(
        "name: faults\nparallel:\n"
        f"  - {{type: tsv, path: '{tsv_path}', src_lang: de, tgt_lang: en, name: t}}\n"
        f"instructions:\n  - {{format: messages, path: '{chat_path}', lang: en, name: c}}\n"
    )  # fmt: skip
    assert main(["--recipe", str(tmp_path / "r.yaml"), "--output", str(tmp_path / "out"), "--tasks", "1", "--workers", "1"]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["removed"]["read_pairs"] == {"malformed": 2} and manifest["removed"]["chat"]["malformed"] == 1
    pairs = pl.read_parquet(tmp_path / "out" / "removed" / "read_pairs.parquet")
    assert sorted(pairs["detail"].to_list()) == ["pairs.tsv, line 3: blank line (only blank lines at the end are allowed)",
                                                 "pairs.tsv, line 4: 1 tab-separated fields, the header has 2"]  # fmt: skip
    chat = pl.read_parquet(tmp_path / "out" / "removed" / "chat.parquet").filter(pl.col("reason") == "malformed")
    assert chat["detail"][0].startswith("chat.jsonl, line 2: ")
    tally()


# --- langid.evaluate ------------------------------------------------------------------------------------------------


def bad_eval_data(tmp_path: Path, case: str) -> tuple[list[str], str]:
    path = tmp_path / "texts.parquet"
    if case == "no such model":
        return ["--model", "nope"], "nope"
    if case == "null label":
        pl.DataFrame({"text": ["Hallo Welt", "Bonjour"], "lang": ["deu_Latn", None]}).write_parquet(path)
        return ["--data", str(path)], f"{path}, row group 0, row 1: lang is null"
    if case == "numeric text":
        pl.DataFrame({"text": [1, 2], "lang": ["deu_Latn", "fra_Latn"]}).write_parquet(path)
        return ["--data", str(path)], f"{path}: column text holds Int64"
    path.write_text("not parquet")
    return ["--data", str(path)], f"{path}: not a Parquet file"


@pytest.mark.parametrize("case", ["no such model", "null label", "numeric text", "not parquet"])
def test_langid_evaluate_names_bad_input_in_one_line(tmp_path, tally, case):
    from langid import evaluate

    argv, named = bad_eval_data(tmp_path, case)
    with pytest.raises(SystemExit) as raised:
        evaluate.main(["--model", "lid176", *argv, "--output", str(tmp_path / "report")] if argv[0] == "--data" else argv)
    message = str(raised.value)
    assert message.startswith("langid.evaluate: error: ") and named in message and "\n" not in message, message
    tally()
