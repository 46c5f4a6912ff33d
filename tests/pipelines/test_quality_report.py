"""The quality report of a version (pipelines.quality_report), checked against the removed/ files of real builds."""

import json
import shutil

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import quality_report
from pipelines.manifest import content_hash, read_manifest, sha256_file
from pipelines.quality_report import QUALITY_FILES, main, scan_step, side_of
from schemas.records import REMOVED_SCHEMA, stable_id
from schemas.text.udhr import language_pairs, udhr_pairs
from tests.conftest import SMALL_LANGS


def removed_frame(path) -> pl.DataFrame:
    """A step file's rows as the report counts them: language and unit by the file's columns."""
    frame = pl.read_parquet(path)
    if "src_lang" in frame.columns:
        return frame.with_columns(language=pl.col("src_lang"), unit=pl.lit("pairs"))
    return frame.with_columns(language=pl.col("lang"), unit=pl.lit("instructions"))


def assert_report_matches_removed(folder) -> dict:
    """Every count of quality.json is the count of the removed/ files, and every example a real removed row."""
    report = json.loads((folder / "quality.json").read_text())
    manifest = read_manifest(folder)
    assert report["version"] == manifest["version"] and report["content_hash"] == manifest["content_hash"]
    steps = {path.stem: removed_frame(path) for path in sorted((folder / "removed").glob("*.parquet"))}
    expected = {(s, r, u): n for s, frame in steps.items() for r, u, n in frame.group_by("reason", "unit").len().iter_rows()}
    assert {(r["step"], r["reason"], r["unit"]): r["rows"] for r in report["reasons"]} == expected
    assert {(r["step"], r["reason"]): r["rows"] for r in report["reasons"]} == {
        (step, reason): n for step, reasons in manifest["removed"].items() for reason, n in reasons.items()
    }
    per_language = {
        (u, lang, s, r): n for s, frame in steps.items() for u, lang, r, n in frame.group_by("unit", "language", "reason").len().iter_rows()
    }
    assert {(e["unit"], e["language"], r["step"], r["reason"]): r["rows"] for e in report["languages"] for r in e["reasons"]} == per_language
    for entry in report["languages"]:
        assert entry["removed"] == sum(r["rows"] for r in entry["reasons"]) == sum(entry["sides"].values())
        assert entry["input"] == entry["passed"] + entry["removed"] and entry["share"] == round(entry["removed"] / entry["input"], 6)
    for unit, totals in report["units"].items():
        assert totals["removed"] == sum(n for (_, _, u), n in expected.items() if u == unit)
        assert totals["input"] == sum(e["input"] for e in report["languages"] if e["unit"] == unit)
    for reason in report["reasons"]:
        assert sum(reason["sides"].values()) == reason["rows"]
        rows = steps[reason["step"]].filter(pl.col("reason") == reason["reason"])
        assert reason["languages"] == rows["language"].n_unique()
        smallest = sorted(rows["id"].unique())[: quality_report.EXAMPLES]
        assert [e["id"] for e in reason["examples"]] == smallest  # deterministic: the smallest ids, every reason has some
        for example in reason["examples"]:
            row = rows.filter(pl.col("id") == example["id"]).row(0, named=True)
            assert example["detail"] == row["detail"] and example["language"] == row["language"]
            texts = [row["src_text"], row["tgt_text"]] if "src_text" in row else [m["content"] for m in row["messages"][:2]]
            for shown, text in zip(example["texts"], texts):
                assert " ".join(text.split()).startswith(shown.removesuffix("…").rstrip())
    return report


def test_report_counts_are_those_of_removed_and_of_what_was_read(small_build):
    report = assert_report_matches_removed(small_build)
    assert set(report["units"]) == {"pairs"}  # this recipe has no zh/en instructions
    # a language's input is every pair the reader produced for it: the embedded corpus is multiway, nothing is joined
    produced = pl.from_arrow(pa.concat_tables(udhr_pairs(language_pairs([*SMALL_LANGS.split(","), "eng_Latn", "zho_Hans"]))))
    read = dict(produced.group_by("src_lang").len().iter_rows())
    assert {e["language"]: e["input"] for e in report["languages"]} == read
    assert report["units"]["pairs"]["input"] == produced.height
    # every removed row is counted on one side: its own text, the pivot's, or the pair as a whole
    assert report["reasons"] and all(sum(r["sides"].values()) == r["rows"] for r in report["reasons"])


def test_the_card_has_a_data_quality_section(small_build):
    card = (small_build / "README.md").read_text()
    report = json.loads((small_build / "quality.json").read_text())
    section = card[card.index("## Data quality") : card.index("## Rows per language and direction")]
    assert "![removed share per language and reason](quality.png)" in section and "[`quality.md`](quality.md)" in section
    assert "python -m pipelines.quality_report <version folder>" in section
    for reason in report["reasons"]:
        assert f"| `{reason['step']}` | `{reason['reason']}` | {reason['unit']} | {reason['rows']} |" in section
        for example in reason["examples"]:
            assert f"`{example['id'][:12]}`" in section
    worst = max(report["languages"], key=lambda e: (e["share"], e["removed"]))
    assert section.index(f"| `{worst['language']}` |") < section.index("<details>")  # the worst language is in the card
    full = (small_build / "quality.md").read_text()
    assert all(f"| `{e['language']}` |" in full for e in report["languages"])  # every language, in quality.md
    assert (small_build / "quality.png").read_bytes()[:4] == b"\x89PNG"


def test_quality_files_are_published_but_not_hashed(small_build, tmp_path):
    manifest = read_manifest(small_build)
    entries = {f["path"]: f for f in manifest["files"]}
    for name in QUALITY_FILES:  # listed, so that publish sends them, with their hash
        assert entries[name]["sha256"] == sha256_file(small_build / name)
    assert content_hash(manifest["files"]) == manifest["content_hash"]
    copy = tmp_path / "copy"
    shutil.copytree(small_build, copy)
    for name in QUALITY_FILES:
        (copy / name).write_bytes(b"changed\n")
    changed = [{**f, "sha256": sha256_file(copy / f["path"])} for f in manifest["files"]]
    assert [f["sha256"] for f in changed] != [f["sha256"] for f in manifest["files"]]
    assert content_hash(changed) == manifest["content_hash"]  # the report describes the content, it is not part of it


def test_the_command_prints_the_report(small_build, tmp_path, capsys):
    report = json.loads((small_build / "quality.json").read_text())
    assert main([str(small_build), "--examples"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"The quality gate removed {report['units']['pairs']['removed']} of {report['units']['pairs']['input']} pairs")
    for reason in report["reasons"]:
        assert any(line.split()[:2] == [reason["step"], reason["reason"]] and line.split()[3] == str(reason["rows"]) for line in out.splitlines())
        assert all(e["id"] in out for e in reason["examples"])
    assert main([str(small_build), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == report
    # a version without a report (built before them): counted again from removed/, without inputs and shares
    old = tmp_path / "old"
    shutil.copytree(small_build, old)
    for name in QUALITY_FILES:
        (old / name).unlink()
    assert main([str(old), "--json"]) == 0
    captured = capsys.readouterr()
    assert "quality.json not found" in captured.err
    again = json.loads(captured.out)
    assert [(r["step"], r["reason"], r["rows"], r["sides"], r["examples"]) for r in again["reasons"]] == [
        (r["step"], r["reason"], r["rows"], r["sides"], r["examples"]) for r in report["reasons"]
    ]
    assert {e["language"]: e["removed"] for e in again["languages"]} == {e["language"]: e["removed"] for e in report["languages"] if e["removed"]}
    assert again["units"]["pairs"]["share"] is None
    assert main([str(tmp_path)]) == 2 and f"{tmp_path}: not a version folder" in capsys.readouterr().err
    (old / "quality.json").write_text("{")
    assert main([str(old)]) == 2 and "quality.json: not valid JSON" in capsys.readouterr().err


def test_sides_from_the_details():
    details = pl.Series(["src: expected deu_Latn, predicted ...", "tgt: expected zho_Hans", "tgt_text quotes an evaluation text of x",
                         "src_text shares 13 words with an evaluation text of x", "the target sentence already has 3 pairs",
                         "the source sentence already has 3 pairs", "length ratio 3.14 > 3.0", "same pair as 0123", "srcless"])  # fmt: skip
    sides = details.to_frame("detail").select(side_of(pl.col("detail"))).to_series().to_list()
    assert sides == ["src", "tgt", "tgt", "src", "tgt", "src", "whole", "whole", "whole"]


def test_counts_and_examples_do_not_depend_on_the_row_groups(tmp_path):
    rows = [dict(id=stable_id("pair", str(i)), src_lang="deu_Latn", src_text=f"text {i}", tgt_lang="eng_Latn", tgt_text=f"text {i}",
                 source="test", source_id=f"test:{i}", split="train", stage="step", reason=["a", "b", "c"][i % 7 % 3], detail=f"detail {i}")
            for i in range(500)]  # fmt: skip
    table = pa.Table.from_pylist(rows, schema=REMOVED_SCHEMA)  # not sorted by id: any order
    frame = pl.from_arrow(table)
    expected = {r: sorted(frame.filter(pl.col("reason") == r)["id"])[:3] for r in ("a", "b", "c")}
    counts = dict(frame.group_by("reason").len().iter_rows())
    for row_group in (10, 64, 100_000):  # read a row group at a time
        pq.write_table(table, tmp_path / "step.parquet", row_group_size=row_group)
        groups, smallest = scan_step(tmp_path / "step.parquet", "pairs")
        assert smallest == expected
        assert {(reason, lang, side): n for reason, lang, side, n in groups} == {(r, "deu_Latn", "whole"): n for r, n in counts.items()}


@pytest.mark.parametrize("removed", [0, 1])
def test_a_version_with_nothing_or_one_row_removed(tmp_path, removed):
    (tmp_path / "removed").mkdir()
    rows = pa.Table.from_pylist([dict(id=stable_id("x"), src_lang="deu_Latn", src_text="a | *b*", tgt_lang="eng_Latn", tgt_text="<c>", source="t",
                                      source_id="t:0", split="train", stage="pair_filter", reason="identical", detail="x")][:removed],
                                schema=REMOVED_SCHEMA)  # fmt: skip
    pq.write_table(rows, tmp_path / "removed" / "pair_filter.parquet")
    report = quality_report.build_report(tmp_path, {"pairs": {"deu_Latn": 9}}, "v1.0.0", "sha256:x")
    assert report["units"]["pairs"] == {"input": 9 + removed, "passed": 9, "removed": removed, "share": round(removed / (9 + removed), 6)}
    quality_report.write_quality(tmp_path, report)
    section = quality_report.card_section(report)
    assert ("Nothing was removed." in section) == (not removed)
    if removed:
        assert r"a \| \*b\*" in section and r"\<c\>" in section  # a removed text cannot break the card's tables
    assert (tmp_path / "quality.png").read_bytes()[:4] == b"\x89PNG"
