"""The last step: what a version holds besides its data files (see `write_shards`).

    <output>/removed/<step>.parquet                         every dropped row with the step and reason
    <output>/manifest.json, README.md, LICENSE, rows.png    provenance, counts, content hash; the dataset card
    <output>/quality.json, quality.md, quality.png          what the quality gate removed, per reason and language
                                                            (pipelines.quality_report)
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.batch import AtomicParquetWriter, FileJob
from pipelines.card import CHART_NAME, write_card, write_chart
from pipelines.manifest import FORMAT_VERSION, content_hash, file_entry, sha256_file, write_manifest
from pipelines.planning import uncompressed_bytes
from pipelines.quality_report import build_report, card_section, passed_counts, write_quality
from schemas.records import SPLITS
from schemas.text.templates import CROSS_LINGUAL_TASKS

REMOVED_ROW_GROUP = 10_000
REMOVED_ROWS_PER_PASS = 200_000  # removed rows are sorted a range of ids at a time: this bounds the memory


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
