"""The last steps: write the published layout (one folder per config), then the manifest and the dataset card.

    <output>/data/<config>/<split>-NNNNN-of-NNNNN.parquet   instructions of one config: `zh`, `en` (the general
                                                            instructions) or a FLORES-200 code (the cross-lingual
                                                            rows of that language); a row's shard is a hash of its
                                                            id, rows sorted by id within a shard
    <output>/removed/<step>.parquet                         every dropped row with the step and reason
    <output>/manifest.json, README.md, LICENSE, rows.png    provenance, counts, content hash; the dataset card
    <output>/quality.json, quality.md, quality.png          what the quality gate removed, per reason and language
                                                            (pipelines.quality_report)

Every row is stored once. The configs `all` and `cross_lingual` are unions of these folders, declared in the
card's YAML (`data/*/...` and `data/*_*/...`: FLORES-200 codes are the only folder names with an underscore).

Shard counts come from the sizes of the mixture's files, planned once (`shard_plan`) so that every task agrees and
the layout does not depend on the task count. Each shard is built by one task, so memory is bounded by the shard
size. A config of several shards is first split by shard, a task per input file (`PartitionShards`), so that each
shard's task reads only its rows, not the whole config. A language's config has one file per split, written by one
mix task as its shard would be if it is its only one (`ready_shard`, `write_shard`): the shards stage links that
into place.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.card import CHART_NAME, write_card, write_chart
from pipelines.manifest import FORMAT_VERSION, content_hash, file_entry, sha256_file, write_manifest
from pipelines.quality_report import build_report, card_section, passed_counts, write_quality
from pipelines.batch import AtomicParquetWriter, FileJob, write_parquet_atomic
from schemas.records import INSTRUCTION_SCHEMA, SPLITS
from schemas.text.templates import CROSS_LINGUAL_TASKS

CHAT_CONFIGS = {"zho_Hans": "zh", "eng_Latn": "en"}  # the language of the mixture's chat-<lang>*.parquet -> config
ROW_GROUP_BYTES = 16 << 20  # streaming readers (datasets, the Hub viewer) fetch a row group at a time
REMOVED_ROW_GROUP = 10_000
REMOVED_ROWS_PER_PASS = 200_000  # removed rows are sorted a range of ids at a time: this bounds the memory


def parse_size(value: str | int, where: str = "shard_size") -> int:
    """'256MB', '1GB', '512KiB' or a number of bytes."""
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30}
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
    if not match or match.group(2).upper() not in units or float(match.group(1)) <= 0:
        raise ValueError(f"{where}: expected a size like 256MB, 1GB or a number of bytes, got {value!r}")
    return int(float(match.group(1)) * units[match.group(2).upper()])


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def config_of(name: str) -> str:
    """The config a file of the mixture (`mixture_files`) belongs to, by its name."""
    if name.startswith("chat-"):
        return CHAT_CONFIGS[name.removeprefix("chat-").split("-")[0]]
    return name


def uncompressed_bytes(meta: pq.FileMetaData) -> int:
    """What a shard plan counts of a mixture file: its uncompressed Parquet size (like `datasets`' max_shard_size,
    measured before compression), read from the file's metadata."""
    return sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))


def text_bytes(rows: pa.Table) -> int:
    """The UTF-8 bytes of every string in the rows, message contents included: what a shard's row groups are sized
    by. The same for the same rows however they were built, which neither Arrow's nbytes (chunks, validity buffers)
    nor the Parquet size (known once written) is."""
    columns = [rows.column(name) for name, dtype in zip(rows.schema.names, rows.schema.types) if pa.types.is_string(dtype)]
    if "messages" in rows.schema.names:
        turns = pc.list_flatten(rows.column("messages"))
        columns += [pc.struct_field(turns, "role"), pc.struct_field(turns, "content")]
    return sum(pc.sum(pc.binary_length(column)).as_py() or 0 for column in columns)


def row_group_rows(size: int, rows: int) -> int:
    """Rows per row group of a shard: about ROW_GROUP_BYTES of text."""
    return min(100_000, max(100, ROW_GROUP_BYTES // max(1, size // max(1, rows))))


def mixture_files(work_dir: Path, split: str) -> list[Path]:
    """The mixture's files of one split: the zh/en parts (`instructions/<split>/chat-*.parquet`) and each language's
    rows, written as its shard (`ready/<split>/<lang>.parquet`)."""
    return sorted([*(Path(work_dir) / "instructions" / split).glob("*.parquet"), *(Path(work_dir) / "ready" / split).glob("*.parquet")])


def shard_plan(work_dir: Path, shard_bytes: int) -> list[dict]:
    """One job per (config, split) with rows: its input files and shard count, from the `uncompressed_bytes` of the
    mixture's files; those files are each written by one task, so the plan is the same for any task count."""
    jobs: dict[tuple[str, str], dict] = {}
    for split in SPLITS:
        for path in mixture_files(work_dir, split):
            meta = pq.read_metadata(path)
            if not meta.num_rows:
                continue
            job = jobs.setdefault((config_of(path.stem), split), {"config": config_of(path.stem), "split": split, "files": [], "rows": 0, "bytes": 0})
            job["files"].append(str(path))
            job["rows"] += meta.num_rows
            job["bytes"] += uncompressed_bytes(meta)
    plan = []
    for job in sorted(jobs.values(), key=lambda j: (j["config"], SPLITS.index(j["split"]))):
        plan.append({**job, "shards": max(1, -(-job["bytes"] // shard_bytes))})
    return plan


def write_shard(path: Path, rows: pa.Table, tmp_dir: Path | None = None) -> None:
    """A published shard: its rows sorted by id, zstd, row groups of about ROW_GROUP_BYTES of text (`text_bytes`);
    written under a temporary name in `tmp_dir` (default: beside it)."""
    write_parquet_atomic(path, rows.sort_by("id").cast(INSTRUCTION_SCHEMA), row_group_size=row_group_rows(text_bytes(rows), rows.num_rows),
                         tmp_dir=tmp_dir)  # fmt: skip


def ready_shard(work_dir: Path, split: str, name: str) -> Path:
    """Where the mix stage writes a language's rows of one split, as `write_shard` writes the config's shard if it is
    its only one: the shards stage links it into place instead of reading, sorting and writing it again (and the
    mix stage writes no other file of it)."""
    return Path(work_dir) / "ready" / split / f"{name}.parquet"


def shard_of(ids: pl.Expr, count: int) -> pl.Expr:
    return ids.str.slice(0, 12).str.to_integer(base=16) % count


def shard_parts(parts_dir: Path, job: dict, index: int) -> Path:
    """Where `PartitionShards` puts the rows of shard `index` of a job: a file per input file, named by its number."""
    return Path(parts_dir) / job["config"] / job["split"] / f"{index:05d}"


class PartitionShards(FileJob):
    """The rows of every input file of a config of several shards, split by shard (`shard_parts`); tasks own input
    files. So each shard's task reads only its own rows, not every file of its config, which a config of n shards
    would have read n times (tests/benchmarks/bench_build.py)."""

    name = "partition_shards"
    type = "💽 - WRITER"

    def __init__(self, plan_path: Path, parts_dir: Path):
        super().__init__()
        self.plan_path = Path(plan_path)
        self.parts_dir = Path(parts_dir)

    def run_job(self, rank: int, world_size: int) -> None:
        plan = json.loads(self.plan_path.read_text())
        inputs = [(job, number) for job in plan if job["shards"] > 1 for number in range(len(job["files"]))]
        for job, number in inputs[rank::world_size]:
            parts: list[list[pa.RecordBatch]] = [[] for _ in range(job["shards"])]
            for batch in pq.ParquetFile(job["files"][number]).iter_batches(batch_size=65_536):  # a batch at a time, as WriteShards
                shards = pl.from_arrow(batch.column("id")).to_frame().select(shard_of(pl.col("id"), job["shards"])).to_series()
                for index, part in enumerate(parts):
                    part.append(batch.filter((shards == index).to_arrow()))
            for index, part in enumerate(parts):
                rows = pa.Table.from_batches(part, schema=part[0].schema) if part else INSTRUCTION_SCHEMA.empty_table()
                write_parquet_atomic(shard_parts(self.parts_dir, job, index) / f"{number:05d}.parquet", rows, work=True)


class WriteShards(FileJob):
    """The shards of the plan, a task per shard. Temporary files go to `tmp_dir` (the build's work folder), so
    that a killed task leaves nothing beside the version's files (default: beside them)."""

    name = "write_shards"
    type = "💽 - WRITER"

    def __init__(self, plan_path: Path, output_dir: Path, parts_dir: Path, tmp_dir: Path | None = None):
        super().__init__()
        self.plan_path = Path(plan_path)
        self.output_dir = Path(output_dir)
        self.parts_dir = Path(parts_dir)  # see PartitionShards
        self.tmp_dir = Path(tmp_dir) if tmp_dir is not None else None

    def run_job(self, rank: int, world_size: int) -> None:
        plan = json.loads(self.plan_path.read_text())
        shards = [(job, index) for job in plan for index in range(job["shards"])]
        for job, index in shards[rank::world_size]:
            path = self.output_dir / "data" / job["config"] / shard_name(job["split"], index, job["shards"])
            if self.link_ready(job, path, self.tmp_dir):
                self.stat_update(job["split"], value=job["rows"])
                continue
            if job["shards"] > 1:  # in the order of the job's files, as if read from them
                files = [shard_parts(self.parts_dir, job, index) / f"{number:05d}.parquet" for number in range(len(job["files"]))]
            else:
                files = job["files"]
            # batch by batch: a whole input file (the zh part is over a million rows) never sits in memory
            parts = [batch for path in files for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536)]
            rows = pa.Table.from_batches(parts, schema=parts[0].schema) if parts else INSTRUCTION_SCHEMA.empty_table()
            write_shard(path, rows, self.tmp_dir)
            self.stat_update(job["split"], value=rows.num_rows)

    @staticmethod
    def link_ready(job: dict, path: Path, tmp_dir: Path | None = None) -> bool:
        """Puts the job's one file in place where it is the config's one shard, already written as such by the mix
        stage (`ready_shard`): a hard link (a copy where the file system has none), so that a task run again finds
        it where it was."""
        ready = Path(job["files"][0])
        if job["shards"] > 1 or len(job["files"]) > 1 or ready != ready_shard(ready.parents[2], job["split"], ready.stem):
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = (tmp_dir or path.parent) / f".{job['config']}.{path.name}.partial"
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
        try:
            os.link(ready, partial)
        except OSError:
            shutil.copyfile(ready, partial)
        os.replace(partial, path)
        return True


def removed_bytes(step_dir: Path) -> int:
    """The uncompressed size of a step's removed rows: what its merge reads, sorts and writes."""
    return sum(uncompressed_bytes(pq.read_metadata(f)) for f in step_dir.glob("*.parquet"))


def merge_removed(step_dir: Path, path: Path, tmp_dir: Path | None = None) -> dict[str, int]:
    """One sorted file of a step's removed rows, streamed: ids are range-partitioned into passes of about
    REMOVED_ROWS_PER_PASS rows, each sorted on its own; written in fixed-size row groups. Returns the rows per reason.

    The rows do not depend on the number of passes, but the bytes can: a row group that spans two passes is written
    from two chunks, and where a column's data of a row group passes a data page (1 MiB) the pages end elsewhere
    than for one chunk (as on the exact_dedup step of tests/benchmarks/bench_build.py). Changing REMOVED_ROWS_PER_PASS
    changes the content hash."""
    files = sorted(str(f) for f in step_dir.glob("*.parquet"))
    total = sum(pq.read_metadata(f).num_rows for f in files)
    schema = pq.read_schema(files[0]) if files else pa.schema([])
    writer = AtomicParquetWriter(path, schema, row_group_size=REMOVED_ROW_GROUP, tmp_dir=tmp_dir)
    if not total:
        writer.close()
        return {}
    scan = pl.scan_parquet(files)
    counts: dict[str, int] = {}  # counted pass by pass: a scan of its own read every file once more
    order = [name for name, dtype in scan.collect_schema().items() if dtype == pl.String]  # ties in id: a total order
    passes = -(-total // REMOVED_ROWS_PER_PASS)
    prefix = pl.col("id").str.slice(0, 8).str.to_integer(base=16)
    pending = None
    for i in range(passes):
        low, high = (i << 32) // passes, ((i + 1) << 32) // passes
        part = scan.filter((prefix >= low) & (prefix < high)).collect(engine="streaming").sort(order)
        for reason, n in part.group_by("reason").len().iter_rows():
            counts[reason] = counts.get(reason, 0) + n
        part = part.to_arrow().cast(writer.schema)
        pending = part if pending is None else pa.concat_tables([pending, part])
        whole = pending.num_rows - pending.num_rows % REMOVED_ROW_GROUP
        if whole:
            writer.write(pending.slice(0, whole))
            pending = pending.slice(whole)
    if pending is not None and pending.num_rows:
        writer.write(pending)
    writer.close()
    return dict(sorted(counts.items()))


def count_rows(paths: list[Path]) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Rows per language (the non-pivot side of translations), per direction and per task: one scan of the shards,
    grouped by the four columns these counts read, whose few groups are then folded: cheaper than a scan per count
    (tests/benchmarks/bench_build.py)."""
    groups = pl.scan_parquet(paths).group_by("task", "src_lang", "tgt_lang", "pivot").len().collect()
    rows = pl.col("len").sum()
    tasks = dict(groups.group_by("task").agg(rows).iter_rows())
    translation = groups.filter(pl.col("task").is_in(CROSS_LINGUAL_TASKS))  # sentences, documents, dialogues
    direction = {f"{src}->{tgt}": n for src, tgt, n in translation.group_by("src_lang", "tgt_lang").agg(rows).iter_rows()}
    lang = pl.when(pl.col("src_lang") == pl.col("pivot")).then("tgt_lang").otherwise("src_lang")
    language = dict(translation.group_by(lang.alias("lang")).agg(rows).iter_rows())
    chat = groups.filter(~pl.col("task").is_in(CROSS_LINGUAL_TASKS))
    direction |= {f"{task}:{code}": n for task, code, n in chat.group_by("task", "src_lang").agg(rows).iter_rows()}
    return language, direction, tasks


class WriteManifest(FileJob):
    name = "write_manifest"
    type = "📦 - FINALIZE"

    def __init__(self, work_dir: Path, output_dir: Path, manifest_base: dict, license_text: str = "", recipe_text: str = ""):
        super().__init__()
        self.work_dir = Path(work_dir)
        self.output_dir = Path(output_dir)
        self.manifest_base = manifest_base
        self.license_text = license_text
        self.recipe_text = recipe_text

    def run_job(self, rank: int, world_size: int) -> None:
        # one task on a machine of several cores. Merging the removed steps is most of the stage, in C without the
        # GIL: two at a time in threads, from the start (they need nothing else) and the largest first. This thread
        # meanwhile hashes the shards, counts their rows and draws the chart (matplotlib: Python, holding the GIL), so
        # the chart takes no thread from the merges (tests/benchmarks/bench_build.py)
        steps = sorted(p for p in (self.work_dir / "removed").glob("*") if p.is_dir())
        with ThreadPoolExecutor(max_workers=2) as pool:
            merging = {step: pool.submit(self.merge_step, step) for step in sorted(steps, key=removed_bytes, reverse=True)}
            files, configs, per_split = self.data_files()
            data_paths = [self.output_dir / f["path"] for f in files]
            # one scan of every shard, not one per config and split: a build may have hundreds of configs
            language, direction, tasks = count_rows(data_paths) if data_paths else ({}, {}, {})
            counts = {"rows_per_language": dict(sorted(language.items())), "rows_per_direction": dict(sorted(direction.items()))}
            chart = write_chart(self.output_dir / CHART_NAME, counts)
            merged = [merging[step].result() for step in steps]
        removed_counts: dict[str, dict[str, int]] = {}
        for step_dir, (path, reasons, digest) in zip(steps, merged):
            files.append(file_entry(self.output_dir, path, sum(reasons.values()), digest))
            if reasons:
                removed_counts[step_dir.name] = reasons

        for name, text in (("LICENSE", self.license_text), ("recipe.yaml", self.recipe_text)):
            (self.output_dir / name).write_text(text, encoding="utf-8")
            files.append(file_entry(self.output_dir, self.output_dir / name))
        manifest = {
            **self.manifest_base,
            "format_version": FORMAT_VERSION,
            "content_hash": content_hash(files),
            "rows_per_split": per_split,
            "rows_per_config": configs,
            **counts,
            "rows_per_task": dict(sorted(tasks.items())),
            "removed": removed_counts,
            "decontamination": {
                reason.removeprefix("overlap:"): n
                for reasons in removed_counts.values() for reason, n in reasons.items() if reason.startswith("overlap:")
            },  # fmt: skip
            "files": files,
        }
        # the quality report reads the merged removed/ files, as a reader of the version would; what passed each
        # language's steps is only known here, from the work files
        report = build_report(self.output_dir, passed_counts(self.work_dir), manifest["version"], manifest["content_hash"])
        quality = write_quality(self.output_dir, report)
        card = write_card(self.output_dir, manifest, card_section(report))
        for path in (card, chart, *quality):  # the card, its charts and the quality report: derived, not in the hash
            manifest["files"].append(file_entry(self.output_dir, path))
        write_manifest(self.output_dir, manifest)  # last: its presence marks a finished build

    def data_files(self) -> tuple[list[dict], dict[str, dict[str, int]], dict[str, int]]:
        """The manifest entry of every shard (config by config, split by split), the rows per config and split, and
        per split."""
        shards, configs, per_split = [], {}, {split: 0 for split in SPLITS}
        for folder in sorted(p for p in (self.output_dir / "data").glob("*") if p.is_dir()):
            for split in SPLITS:
                paths = sorted(folder.glob(f"{split}-*.parquet"))
                if not paths:
                    continue
                rows = [pq.read_metadata(path).num_rows for path in paths]
                shards += zip(paths, rows)
                configs.setdefault(folder.name, {})[split] = sum(rows)
                per_split[split] += sum(rows)
        digests = map(sha256_file, [path for path, _ in shards])  # hashlib: C, without the GIL, beside the merges
        files = [file_entry(self.output_dir, path, rows, digest) for (path, rows), digest in zip(shards, digests)]
        return files, configs, per_split

    def merge_step(self, step_dir: Path) -> tuple[Path, dict[str, int], str]:
        """removed/<step>.parquet from the step's files: its path, rows per reason and sha256."""
        path = self.output_dir / "removed" / f"{step_dir.name}.parquet"
        reasons = merge_removed(step_dir, path, self.work_dir / "tmp")
        return path, reasons, sha256_file(path)
