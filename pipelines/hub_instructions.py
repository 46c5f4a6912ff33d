"""Instruction sets on the Hugging Face Hub (`instructions:` entries with `type: hub`, or a `preset:`), streamed as
Arrow batches from their Parquet files at a revision resolved to a commit once, like the parallel `hub` source.

    instructions:
      - {preset: ultrachat}                                        # a ready-made entry (INSTRUCTION_PRESETS)
      - {type: hub, repo: org/name, revision: main, hub_split: train, format: alpaca, lang: zho_Hans,
         columns: {instruction: input, output: target}, license: cc-by-4.0}

Formats: `alpaca` and `belle` (columns instruction, input, output, and an optional system), `sharegpt` (a list
column `conversations` of {from, value}), `messages` (a list column `messages` of {role, content}); `columns` maps
those names to the dataset's own columns. The rows are read from the Parquet files of the split (the card's
`configs:` says which; a dataset shipped as JSON is read from the Hub's Parquet conversion, `revision:
refs/convert/parquet`), a chunk of row groups per task; the row counts come from the files' footers, which
`--plan` reads without reading any row (pipelines/plan.py).

Licenses: a source is non-commercial when its preset says so (`noncommercial: true` in a recipe) or its license is
NC or research-only (`is_noncommercial`); the card and LICENSE flag it, and `exclude_noncommercial: true` (or
`--exclude-noncommercial`) leaves every such source out of the build.
"""

from __future__ import annotations

import fnmatch
import json
import re
import typing
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.chat import as_messages
from pipelines.sources import BATCH_ROWS, Malformed, SourceError, _commit_of, _named
from schemas.config import STRICT_KEYS
from schemas.language_codes import LanguageCode, to_flores
from schemas.records import CHAT_SCHEMA, MESSAGE_TYPE, stable_ids

CHUNK_ROWS = 200_000  # row groups are grouped into chunks of about this many rows, a chunk per task at a time
NONCOMMERCIAL = re.compile(r"(?:^|[^a-z])nc(?:[^a-z]|$)|non-?commercial|research[- ]only|research use", re.IGNORECASE)
ROLES = {"human": "user", "user": "user", "prompter": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
         "bard": "assistant", "bing": "assistant", "model": "assistant", "system": "system"}  # fmt: skip
FORMAT_COLUMNS = {"alpaca": ("instruction", "input", "output", "system"), "belle": ("instruction", "input", "output", "system"),
                  "sharegpt": ("conversations",), "messages": ("messages",)}  # fmt: skip
REQUIRED = {"alpaca": ("instruction", "output"), "belle": ("instruction", "output"), "sharegpt": ("conversations",), "messages": ("messages",)}


def is_noncommercial(license: str) -> bool:
    """Whether a license string forbids commercial use: CC *-NC-*, "non-commercial", "research only"."""
    return bool(license and NONCOMMERCIAL.search(license))


@dataclass(frozen=True)
class InstructionPreset:
    """A ready-made instruction set: where it lives, its schema (format and column mapping) and its terms. `kind`
    and `why` are for the plan and the README; `rows` is the train split's size as its card gives it."""

    repo: str
    lang: str
    format: str
    license: str
    kind: str
    rows: int
    hub_split: str = "train"
    revision: str = "main"
    columns: tuple = ()
    configs: typing.Any = None  # None: the default config; "all" or a tuple of config names
    files: str = ""  # only the split's files matching this glob
    noncommercial: bool = False
    gated: bool = False
    why: str = ""


# Each preset's schema and license as its dataset card gives them (README.md, "BayLing-2 from public sources", says
# what was checked and what --plan confirms on first use). A set shipped as JSON/JSONL is read from the Hub's
# Parquet conversion (refs/convert/parquet: <config>/<split>/NNNN.parquet).
INSTRUCTION_PRESETS = {
    # English
    "ultrachat": InstructionPreset("HuggingFaceH4/ultrachat_200k", "eng_Latn", "messages", "mit", "multi-turn dialogue", 207_865,
                                   hub_split="train_sft", why="filtered UltraChat: multi-turn, general chat, MIT"),
    "openorca": InstructionPreset("Open-Orca/OpenOrca", "eng_Latn", "alpaca", "mit", "task-style (FLAN, GPT-4 answers)", 994_896,
                                  columns=(("instruction", "question"), ("output", "response"), ("system", "system_prompt")),
                                  files="*1M-GPT4-Augmented*", why="the GPT-4-answered part of OpenOrca: FLAN tasks, MIT"),
    "dolly": InstructionPreset("databricks/databricks-dolly-15k", "eng_Latn", "alpaca", "cc-by-sa-3.0", "task-style (human-written)", 15_011,
                               revision="refs/convert/parquet", columns=(("input", "context"), ("output", "response")),
                               why="written by people, commercially usable"),
    "no_robots": InstructionPreset("HuggingFaceH4/no_robots", "eng_Latn", "messages", "cc-by-nc-4.0", "general chat (human-written)", 9_500,
                                   noncommercial=True, why="written by people; non-commercial"),
    # Chinese
    "firefly": InstructionPreset("YeungNLP/firefly-train-1.1M", "zho_Hans", "alpaca", "not stated on the card (see the dataset card)",
                                 "task-style (23 Chinese NLP tasks)", 1_649_399, revision="refs/convert/parquet",
                                 columns=(("instruction", "input"), ("output", "target")), why="the largest task-style Chinese set"),
    "belle": InstructionPreset("BelleGroup/train_2M_CN", "zho_Hans", "belle", "gpl-3.0; research use only (dataset card)",
                               "general chat (single turn)", 2_000_000, revision="refs/convert/parquet", noncommercial=True,
                               why="general Chinese chat at scale; research use only"),
    "alpaca_zh": InstructionPreset("shibing624/alpaca-zh", "zho_Hans", "alpaca", "cc-by-4.0", "task-style (GPT-4 answers)", 48_818,
                                   revision="refs/convert/parquet", why="Alpaca prompts with GPT-4 Chinese answers, CC-BY-4.0"),
    "coig_cqia": InstructionPreset("m-a-p/COIG-CQIA", "zho_Hans", "alpaca", "cc-by-nc-4.0", "general chat (human-verified, from Chinese sites)",
                                   44_694, revision="refs/convert/parquet", configs="all", noncommercial=True,
                                   why="human-verified Chinese Q&A; non-commercial"),
}


def _yaml_front_matter(text: str) -> dict:
    import yaml

    match = re.match(r"^---\s*\n(.*?)\n---\s*\n", text, re.S)
    data = yaml.safe_load(match.group(1)) if match else None
    return data if isinstance(data, dict) else {}


def _patterns(data_files, split: str) -> list[str]:
    """A card config's data_files patterns of one split (a bare pattern or list is the train split)."""
    if isinstance(data_files, str):
        return [data_files] if split == "train" else []
    found = []
    for entry in data_files or []:
        if isinstance(entry, str):
            found += [entry] if split == "train" else []
        elif isinstance(entry, dict) and entry.get("split") == split:
            found += [entry["path"]] if isinstance(entry.get("path"), str) else list(entry.get("path") or [])
    return found


def split_files(files: list[str], card: dict, config: str | None, split: str) -> list[str]:
    """The Parquet files of a config's split in a repository's file list: by the card's `configs:` where it has
    them, else by the Parquet conversion's layout (<config>/<split>/NNNN.parquet, `partial-<split>` for a large one),
    else by name (a folder or a file named after the split)."""
    configs = card.get("configs") if isinstance(card.get("configs"), list) else []
    if configs:
        named = {c.get("config_name"): c for c in configs if isinstance(c, dict)}
        chosen = named.get(config) if config else named.get("default") or next((c for c in named.values() if c.get("default")), None)
        if chosen is None and not config and len(named) == 1:
            chosen = next(iter(named.values()))
        if chosen is not None:
            patterns = _patterns(chosen.get("data_files"), split)
            return sorted(f for f in files if f.endswith(".parquet") and any(fnmatch.fnmatch(f, p) for p in patterns))
    prefix = f"{config or 'default'}/"
    converted = sorted(f for f in files if f.startswith(prefix) and f.split("/")[1:2] in ([split], [f"partial-{split}"]) and f.endswith(".parquet"))
    if converted:
        return converted
    under = [f for f in files if f.endswith(".parquet") and (not config or f.startswith(f"{config}/"))]
    named = sorted(f for f in under if split in f.split("/")[:-1] or f.split("/")[-1].startswith((f"{split}-", f"{split}.")))
    if named or split != "train":
        return named
    others = ("test", "validation", "valid", "dev")  # without a card or split names, `datasets` makes every file train
    return sorted(f for f in under if not any(o in f.split("/")[:-1] or f.split("/")[-1].startswith((f"{o}-", f"{o}.")) for o in others))


def converted_configs(files: list[str]) -> list[str]:
    """The configs of a Parquet conversion (refs/convert/parquet): its top-level folders."""
    return sorted({f.split("/")[0] for f in files if f.count("/") >= 2 and f.endswith(".parquet")})


def hub_url(repo: str, commit: str, path: str) -> str:
    return f"datasets/{repo}@{commit}/{path}"


def footers(repo: str, commit: str, paths: list[str]) -> dict[str, pq.FileMetaData]:
    """Every file's Parquet footer, read by range requests (a few kB each, no row): in threads, the Hub answers each
    in a round trip."""
    from huggingface_hub import HfFileSystem

    fs = HfFileSystem()

    def read(path):
        with fs.open(hub_url(repo, commit, path), block_size=256 << 10) as f:  # the footer's block, not the file
            return pq.ParquetFile(f).metadata

    with ThreadPoolExecutor(8) as pool:
        return dict(zip(paths, pool.map(read, paths)))


@dataclass
class HubInstructionSource:
    """Instructions of one language from a Hub dataset (see the module's doc). The driver resolves `revision` to a
    commit once; every task reads that commit, and the manifest records it."""

    __pydantic_config__ = STRICT_KEYS

    type: typing.Literal["hub"] = "hub"
    preset: str = ""
    repo: str = ""
    revision: str = ""
    config: str | None = None
    configs: typing.Any = None
    hub_split: str = ""
    files: str = ""
    format: typing.Literal["alpaca", "sharegpt", "belle", "messages", ""] = ""
    columns: dict[str, str] = field(default_factory=dict)
    lang: LanguageCode | None = None
    name: str = ""
    license: str = ""
    noncommercial: bool | None = None

    def __post_init__(self):
        where = f"instruction source {self.name or self.preset or self.repo}"
        if self.preset:
            if self.preset not in INSTRUCTION_PRESETS:
                raise SourceError(f"{where}: unknown preset {self.preset!r} (known: {', '.join(INSTRUCTION_PRESETS)})")
            p = INSTRUCTION_PRESETS[self.preset]
            self.repo = self.repo or p.repo
            self.revision = self.revision or p.revision
            self.hub_split = self.hub_split or p.hub_split
            self.files = self.files or p.files
            self.format = self.format or p.format
            self.columns = {**dict(p.columns), **self.columns}
            self.lang = self.lang or p.lang
            self.license = self.license or p.license
            self.configs = self.configs if self.configs is not None or self.config else p.configs
            if self.noncommercial is None:
                self.noncommercial = p.noncommercial
        missing = [k for k in ("repo", "lang") if not getattr(self, k)]
        if missing:
            raise SourceError(f"{where}: a hub instruction source needs {', '.join(missing)} (or a preset: {', '.join(INSTRUCTION_PRESETS)})")
        self.revision = self.revision or "main"
        self.hub_split = self.hub_split or "train"
        self.format = self.format or "messages"
        self.name = self.name or f"hub:{self.preset or self.repo.split('/')[-1]}"
        self.lang = to_flores(self.lang)
        unknown = sorted(set(self.columns) - set(FORMAT_COLUMNS[self.format]))
        if unknown:
            raise SourceError(f"{where}.columns: {', '.join(unknown)} is not a column of the {self.format} format (it has {', '.join(FORMAT_COLUMNS[self.format])})")
        if self.config and self.configs is not None:
            raise SourceError(f"{where}: give `config:` or `configs:`, not both")
        if self.configs is not None and not (self.configs == "all" or (isinstance(self.configs, list | tuple) and all(isinstance(c, str) for c in self.configs))):
            raise SourceError(f"{where}.configs: expected all or a list of config names, got {self.configs!r}")

    @property
    def is_noncommercial(self) -> bool:
        return bool(self.noncommercial) if self.noncommercial is not None else is_noncommercial(self.license)

    # --- what the driver resolves once -----------------------------------------------------------------------------
    def _hub_call(self, call, revision: str):
        try:
            return call()
        except SourceError:
            raise
        except Exception as e:  # the Hub's errors differ by version: offline, gated, not found
            raise self._hub_error(e, revision) from None

    def _hub_error(self, error: Exception, revision: str) -> SourceError:
        hint = ""
        if type(error).__name__ == "GatedRepoError":
            hint = " (a gated dataset: accept its terms on the Hub and set HF_TOKEN)"
        return SourceError(f"instruction source {self.name}: cannot read Hub dataset {self.repo}@{revision}: {_named(error)}{hint}")

    def commit(self) -> str:
        if getattr(self, "_commit", None) is None:
            self._commit = self._hub_call(lambda: _commit_of(self.repo, self.revision), self.revision)
        return self._commit

    def data_files(self) -> list[str]:
        """The Parquet files this source reads, at its commit (listed once)."""
        if getattr(self, "_files", None) is None:
            self._files = self._hub_call(self._find_files, self.commit())
        return self._files

    def _find_files(self) -> list[str]:
        from huggingface_hub import HfApi, hf_hub_download

        commit = self.commit()
        listed = HfApi().list_repo_files(self.repo, repo_type="dataset", revision=commit)
        card = {}
        if "README.md" in listed and self.revision != "refs/convert/parquet":  # a conversion has no card of its own
            with open(hf_hub_download(self.repo, "README.md", repo_type="dataset", revision=commit), encoding="utf-8") as f:
                card = _yaml_front_matter(f.read())
        if self.configs == "all":
            names = [c.get("config_name") for c in card.get("configs") or [] if isinstance(c, dict)] or converted_configs(listed)
        else:
            names = list(self.configs) if self.configs is not None else [self.config]
        found = []
        for name in names:
            files = split_files(listed, card, name, self.hub_split)
            files = [f for f in files if not self.files or fnmatch.fnmatch(f, self.files)]
            if not files and self.configs != "all":
                parquet = "" if any(f.endswith(".parquet") for f in listed) else "; it has no Parquet files: give `revision: refs/convert/parquet`"
                raise SourceError(f"instruction source {self.name}: {self.repo}@{commit} has no Parquet files of split {self.hub_split!r}"
                                  f"{f' in config {name!r}' if name else ''}{f' matching {self.files!r}' if self.files else ''}{parquet}")  # fmt: skip
            found += files
        if not found:
            raise SourceError(f"instruction source {self.name}: {self.repo}@{commit} has no Parquet files of split {self.hub_split!r} in any config")
        return found

    def row_groups(self) -> list[tuple[str, int, int]]:
        """(file, row group, rows) of every row group, from the footers (read once)."""
        if getattr(self, "_row_groups", None) is None:
            metas = self._hub_call(lambda: footers(self.repo, self.commit(), self.data_files()), self.commit())
            self._row_groups = [(path, i, metas[path].row_group(i).num_rows) for path in self.data_files() for i in range(metas[path].num_row_groups)]
        return self._row_groups

    def rows(self) -> int:
        return sum(n for _, _, n in self.row_groups())

    def languages(self) -> set[str]:
        return {self.lang}

    def chunks(self, size: int | None = None) -> list[tuple[str, int, int, int]]:
        """Work units: (file, first row group, end row group, the file's row number of the first row)."""
        size, found = size or CHUNK_ROWS, []
        for path in self.data_files():
            groups = [(i, n) for p, i, n in self.row_groups() if p == path]
            start, rows, first = 0, 0, 0
            for i, n in groups:
                rows += n
                if rows >= size or i == groups[-1][0]:
                    found.append((path, start, i + 1, first))
                    start, first, rows = i + 1, first + rows, 0
        return found

    # --- reading --------------------------------------------------------------------------------------------------
    def _column(self, key: str) -> str:
        """The dataset's column of one of the format's keys; "" (none) where that name is mapped to another key
        (firefly's `input` is its instruction, not an input)."""
        if key in self.columns:
            return self.columns[key]
        return "" if key in self.columns.values() else key

    def read(self, chunk: tuple | None = None, malformed: list | None = None) -> typing.Iterator[pa.Table]:
        """CHAT_SCHEMA batches of one chunk (see `chunks`), or of every file. A row that is not of the format (a
        null answer, an unknown role) goes to `malformed`; without that list it is a SourceError naming it."""
        from huggingface_hub import HfFileSystem

        commit, fs = self.commit(), HfFileSystem()
        for path, start, end, first in [chunk] if chunk else self.chunks():
            where = f"{self.repo}@{commit[:12]}/{path}"
            try:
                with fs.open(hub_url(self.repo, commit, path), block_size=8 << 20) as f:
                    parquet = pq.ParquetFile(f, pre_buffer=True)  # a row group's column chunks in few range requests
                    wanted = [self._column(k) for k in FORMAT_COLUMNS[self.format]]
                    missing = [self._column(k) for k in REQUIRED[self.format] if self._column(k) not in parquet.schema_arrow.names]
                    if missing:
                        raise SourceError(f"instruction source {self.name}: {where} has no column {missing[0]!r} for the {self.format} format "
                                          f"(it has {', '.join(parquet.schema_arrow.names)}; map yours with `columns:`)")  # fmt: skip
                    present = [c for c in wanted if c and c in parquet.schema_arrow.names]
                    row = first
                    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, row_groups=range(start, end), columns=present):
                        table = self.to_chat(pa.Table.from_batches([batch]), path, row, malformed)
                        row += batch.num_rows
                        if table.num_rows:
                            yield table
            except SourceError:
                raise
            except Exception as e:  # a dropped connection, a gated file, a broken footer: named like any Hub error
                raise self._hub_error(e, commit) from None

    def to_chat(self, table: pa.Table, path: str, first_row: int, malformed: list | None = None) -> pa.Table:
        """CHAT_SCHEMA rows of a batch of the dataset's rows (the file's rows from `first_row`), whole columns at a
        time; a row that is not of the format is reported (see `read`)."""
        n = table.num_rows
        if self.format in ("sharegpt", "messages"):
            lengths, role, content, bad = self._turns(table)
        else:
            lengths, role, content, bad = self._prompt_answer(table)
        rows = np.arange(first_row, first_row + n)
        source_ids = pl.select(pl.lit(f"{path}:") + pl.int_range(first_row, first_row + n, dtype=pl.Int64).cast(pl.String)).to_series()
        if bad.any():
            for i in np.flatnonzero(bad):
                record = Malformed(f"{self.repo}/{path}", f"row {rows[i]}", f"not of the {self.format} format: {self._why(table, i)}",
                                   src_lang=self.lang, text=json.dumps(table.slice(i, 1).to_pylist()[0], ensure_ascii=False, default=str)[:500])  # fmt: skip
                if malformed is None:
                    raise SourceError(f"instruction source {self.name}: {record.message()}")
                malformed.append(record)
        keep = ~bad
        turn_keep = np.repeat(keep, lengths)
        messages = as_messages(lengths[keep], role.filter(pl.Series(turn_keep)), content.filter(pl.Series(turn_keep)))
        kept_ids = source_ids.filter(pl.Series(keep))
        ids = stable_ids(pl.select(pl.concat_str(pl.lit(self.name), pl.lit(kept_ids), separator="\x1f")).to_series())
        count = int(keep.sum())
        return pa.table({"id": ids.to_arrow(), "messages": messages.to_arrow().cast(pa.list_(MESSAGE_TYPE)), "lang": [self.lang] * count,
                         "source": [self.name] * count, "source_id": kept_ids.to_arrow()}, schema=CHAT_SCHEMA)  # fmt: skip

    def _strings(self, table: pa.Table, key: str) -> pl.Series | None:
        column = self._column(key)
        if column not in table.column_names:
            return None
        values = pl.Series(table.column(column).combine_chunks())
        return values.cast(pl.String, strict=False) if not values.dtype.is_nested() else pl.Series([None] * len(values), dtype=pl.String)

    def _prompt_answer(self, table: pa.Table):
        """alpaca/belle: [system], user (instruction, then input after a blank line), assistant (output)."""
        n = table.num_rows
        instruction, output = self._strings(table, "instruction"), self._strings(table, "output")
        given = self._strings(table, "input")
        system = self._strings(table, "system")
        given = given.fill_null("") if given is not None else pl.Series([""] * n, dtype=pl.String)
        frame = pl.DataFrame({"instruction": instruction, "input": given, "output": output,
                              "system": system.fill_null("") if system is not None else pl.Series([""] * n, dtype=pl.String)})  # fmt: skip
        frame = frame.with_columns(prompt=pl.when(pl.col("input") != "").then(pl.col("instruction") + "\n\n" + pl.col("input")).otherwise("instruction"))
        bad = frame.select(pl.col("instruction").is_null() | pl.col("output").is_null()).to_series().to_numpy()
        has_system = (frame["system"] != "").to_numpy()
        lengths = np.where(has_system, 3, 2).astype(np.int64)
        turns = frame.select(
            roles=pl.when(pl.col("system") != "").then(pl.lit(["system", "user", "assistant"])).otherwise(pl.lit(["user", "assistant"])),
            contents=pl.when(pl.col("system") != "").then(pl.concat_list("system", "prompt", "output")).otherwise(pl.concat_list("prompt", "output")),
        )  # fmt: skip
        role = turns["roles"].explode()
        content = turns["contents"].explode().fill_null("")
        return lengths, role, content, bad

    def _turns(self, table: pa.Table):
        """sharegpt/messages: a list column of turns; a row without turns, a turn without text or of an unknown role
        is bad."""
        n, key = table.num_rows, "conversations" if self.format == "sharegpt" else "messages"
        role_key, content_key = ("from", "value") if self.format == "sharegpt" else ("role", "content")
        column = table.column(self._column(key))
        lists = pl.Series(column.combine_chunks())
        if not isinstance(lists.dtype, pl.List) or not isinstance(lists.dtype.inner, pl.Struct) or \
                {role_key, content_key} - {f.name for f in lists.dtype.inner.fields}:  # fmt: skip
            raise SourceError(f"instruction source {self.name}: column {self._column(key)!r} is {column.type}, not a list of "
                              f"{{{role_key}, {content_key}}} ({self.format} format)")  # fmt: skip
        lengths = lists.list.len().fill_null(0).to_numpy().astype(np.int64)
        turns = lists.explode(empty_as_null=False, keep_nulls=False).struct.unnest() if lengths.sum() else pl.DataFrame({role_key: [], content_key: []}, schema={role_key: pl.String, content_key: pl.String})
        role = turns[role_key].cast(pl.String).str.to_lowercase().replace_strict(ROLES, default=None)
        content = turns[content_key].cast(pl.String)
        turn_bad = (role.is_null() | content.is_null()).to_numpy()
        row_of_turn = np.repeat(np.arange(n), lengths)
        bad = (np.bincount(row_of_turn[turn_bad], minlength=n) > 0) | (lengths == 0)
        return lengths, role.fill_null(""), content.fill_null(""), bad

    def _why(self, table: pa.Table, i: int) -> str:
        record = table.slice(i, 1).to_pylist()[0]
        if self.format in ("alpaca", "belle"):
            for key in REQUIRED[self.format]:
                if record.get(self._column(key)) is None:
                    return f"{self._column(key)} is null"
            return "bad values"
        turns = record.get(self._column("conversations" if self.format == "sharegpt" else "messages"))
        if not turns:
            return "no turns"
        role_key, content_key = ("from", "value") if self.format == "sharegpt" else ("role", "content")
        for number, turn in enumerate(turns, start=1):
            if str(turn.get(role_key)).lower() not in ROLES:
                return f"turn {number}'s {role_key} is {turn.get(role_key)!r} (known: {', '.join(sorted(ROLES))})"
            if turn.get(content_key) is None:
                return f"turn {number}'s {content_key} is null"
        return "bad turns"

    def provenance(self) -> dict:
        details = {"format": self.format, "split": self.hub_split, "revision": self.revision, "lang": self.lang, "files": str(len(self.data_files()))}
        if self.preset:
            details["preset"] = self.preset
        if self.configs is not None or self.config:
            details["configs"] = self.configs if isinstance(self.configs, str) else ",".join(self.configs or [self.config])
        if self.is_noncommercial:
            details["noncommercial"] = "true"
        return {"name": self.name, "version": self.commit(), "origin": f"hf://datasets/{self.repo}", "license": self.license, "sha256": "", "details": details}
