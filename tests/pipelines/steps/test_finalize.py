import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipelines.batch import RemovedRows
from pipelines.planning import parse_size, shard_plan
from pipelines.steps import write_manifest, write_shards
from pipelines.steps.mix import mixture_writer, write_language
from pipelines.steps.write import PairWriter
from pipelines.steps.write_manifest import count_rows, merge_removed
from pipelines.steps.write_shards import WriteShards, ready_shard, text_bytes, write_shard
from schemas.records import INSTRUCTION_SCHEMA, PAIR_SCHEMA, REMOVED_SCHEMA, stable_id


def removed_rows(n: int) -> pa.Table:
    rows = []
    for i in range(n):
        pair = i % (n // 2)  # every id twice, with other reasons: ties in id need an order of their own
        rows.append(dict(id=stable_id("pair", str(pair)), src_lang="deu_Latn", src_text=f"text {pair}", tgt_lang="eng_Latn",
                         tgt_text=f"text {pair}", source="test", source_id=f"test:{pair}", split="train", stage="step",
                         reason=["length_ratio", "language_id", "identical"][i % 3], detail=f"detail {i}"))  # fmt: skip
    return pa.Table.from_pylist(rows, schema=REMOVED_SCHEMA)


def write_parts(folder, table: pa.Table, parts: int) -> None:
    folder.mkdir(parents=True)
    for rank in range(parts):  # what a build with `parts` tasks leaves: each task's rows, in its own order
        pq.write_table(table.take(list(range(rank, table.num_rows, parts))[::-1]), folder / f"pairs-{rank:05d}.parquet")


def test_merged_removed_rows_do_not_depend_on_tasks_or_passes(tmp_path, monkeypatch):
    table = removed_rows(2_600)
    write_parts(tmp_path / "three", table, 3)
    write_parts(tmp_path / "five", table, 5)
    monkeypatch.setattr(write_manifest, "REMOVED_ROW_GROUP", 500)
    monkeypatch.setattr(write_manifest, "REMOVED_ROWS_PER_PASS", 1_000_000)
    counts = merge_removed(tmp_path / "three", tmp_path / "one-pass.parquet")
    monkeypatch.setattr(write_manifest, "REMOVED_ROWS_PER_PASS", 300)  # 9 passes over id ranges
    assert merge_removed(tmp_path / "five", tmp_path / "passes.parquet") == counts
    assert (tmp_path / "one-pass.parquet").read_bytes() == (tmp_path / "passes.parquet").read_bytes()
    merged = pq.read_table(tmp_path / "passes.parquet")
    assert merged.num_rows == table.num_rows
    assert merged.column("id").to_pylist() == sorted(table.column("id").to_pylist())
    assert list(counts.items()) == [("identical", 866), ("language_id", 867), ("length_ratio", 867)]  # in the manifest in this order
    assert [pq.ParquetFile(tmp_path / "passes.parquet").metadata.row_group(i).num_rows for i in range(6)] == [500] * 5 + [100]


def test_no_removed_rows_still_gives_a_file(tmp_path):
    (tmp_path / "step").mkdir()
    pq.write_table(REMOVED_SCHEMA.empty_table(), tmp_path / "step" / "pairs-00000.parquet")
    assert merge_removed(tmp_path / "step", tmp_path / "out.parquet") == {}
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 0


def test_count_rows_per_language_direction_and_task(tmp_path):
    rows = [
        *[("translation", "deu_Latn", "eng_Latn", "eng_Latn")] * 3,
        *[("translation", "eng_Latn", "deu_Latn", "eng_Latn")] * 2,
        *[("translate_document", "zho_Hans", "swh_Latn", "zho_Hans")] * 4,
        ("translate_dialogue", "swh_Latn", "eng_Latn", "eng_Latn"),
        *[("instruction", "zho_Hans", "zho_Hans", "")] * 5,  # general instructions: counted by task and language
        *[("instruction", "eng_Latn", "eng_Latn", "")] * 2,
    ]
    table = pa.table({name: [row[i] for row in rows] for i, name in enumerate(["task", "src_lang", "tgt_lang", "pivot"])})
    paths = [tmp_path / "a.parquet", tmp_path / "b.parquet"]  # the counts add up over files
    pq.write_table(table.slice(0, 7), paths[0])
    pq.write_table(table.slice(7), paths[1])
    language, direction, tasks = count_rows(paths)
    assert language == {"deu_Latn": 5, "swh_Latn": 5}
    assert direction == {
        "deu_Latn->eng_Latn": 3, "eng_Latn->deu_Latn": 2, "zho_Hans->swh_Latn": 4, "swh_Latn->eng_Latn": 1,
        "instruction:zho_Hans": 5, "instruction:eng_Latn": 2,
    }  # fmt: skip
    assert tasks == {"translation": 5, "translate_document": 4, "translate_dialogue": 1, "instruction": 7}


def test_parse_size():
    assert parse_size("256MB") == 256_000_000 and parse_size("1GiB") == 1 << 30 and parse_size(1000) == 1000
    for bad in ("lots", "0MB", "-1", "12 parsecs"):
        with pytest.raises(ValueError, match="expected a size like 256MB"):
            parse_size(bad)


def column_layout(path) -> dict[str, tuple[str, bool, bool]]:
    """Per column of the first row group: (codec, dictionary-encoded, statistics written)."""
    group = pq.read_metadata(path).row_group(0)
    return {c.path_in_schema: (c.compression, c.has_dictionary_page, c.is_stats_set) for c in map(group.column, range(group.num_columns))}


def test_work_files_keep_dictionaries_only_where_they_pay(tmp_path):
    rows = removed_rows(40)
    german = rows.select(PAIR_SCHEMA.names)
    french = german.set_column(1, PAIR_SCHEMA.field("src_lang"), pa.array(["fra_Latn"] * 40))
    mixed = pa.concat_tables([german.slice(0, 5), french.slice(0, 3), german.slice(5, 5)])
    list(PairWriter(tmp_path / "pairs").run(iter([german.slice(10), mixed]), rank=0))  # one language, then two
    assert pq.read_table(tmp_path / "pairs" / "deu_Latn.parquet").equals(pa.concat_tables([german.slice(10), german.slice(0, 10)]))
    assert pq.read_table(tmp_path / "pairs" / "fra_Latn.parquet").equals(french.slice(0, 3))
    writer = RemovedRows(tmp_path / "removed").writer("step", 0)
    writer.write(rows)
    writer.close()
    low = {"src_lang", "tgt_lang", "source", "split", "stage", "reason", "detail"}
    for path in (tmp_path / "pairs" / "deu_Latn.parquet", tmp_path / "removed" / "step" / "run-00000.parquet"):
        layout = column_layout(path)
        assert {name for name, (_, dictionary, _) in layout.items() if dictionary} == low & set(layout)
        assert {(codec, stats) for codec, _, stats in layout.values()} == {("UNCOMPRESSED", False)}
    merge_removed(tmp_path / "removed" / "step", tmp_path / "published.parquet")  # published: zstd, with statistics
    layout = column_layout(tmp_path / "published.parquet")
    assert {name for name, (_, dictionary, _) in layout.items() if dictionary} == low
    assert {name for name, (_, _, stats) in layout.items() if stats} == low | {"id"}  # what readers filter on
    assert {codec for codec, _, _ in layout.values()} == {"ZSTD"}


def test_mixture_files_are_uncompressed_but_encoded_as_shards(tmp_path):
    """`shard_plan` measures the zh/en part's files and the languages' ready shards alike: the same dictionaries and
    statistics, so the sizes differ by the codec only, which the plan's measure leaves out."""
    rows = instruction_rows(50)
    writer = mixture_writer(tmp_path / "train" / "chat-zho_Hans-000.parquet")
    writer.write(rows)
    writer.close()
    write_shard(tmp_path / "shard.parquet", rows)
    mixture, shard = column_layout(tmp_path / "train" / "chat-zho_Hans-000.parquet"), column_layout(tmp_path / "shard.parquet")
    assert len(mixture) == len(INSTRUCTION_SCHEMA.names) + 1  # messages: role and content
    assert {name: encoded for name, (_, *encoded) in mixture.items()} == {name: encoded for name, (_, *encoded) in shard.items()}
    few = {"task", "src_lang", "tgt_lang", "instruction_lang", "pivot", "source", "template_id", "split"}
    assert {name for name, (_, dictionary, _) in shard.items() if dictionary} == few
    assert {name for name, (_, _, stats) in shard.items() if stats} == few | {"id"}
    assert {codec for codec, _, _ in mixture.values()} == {"UNCOMPRESSED"} and {codec for codec, _, _ in shard.values()} == {"ZSTD"}


def instruction_rows(n: int) -> pa.Table:
    columns = {name: [f"{name} {i % 5}" for i in range(n)] for name in INSTRUCTION_SCHEMA.names}
    columns |= {"id": [stable_id(str(i)) for i in range(n)], "split": ["train"] * (n - 10) + ["test"] * 10,
                "messages": [[{"role": "user", "content": f"request {i}"}, {"role": "assistant", "content": f"answer {i}"}] for i in range(n)]}  # fmt: skip
    return pa.table(columns, schema=INSTRUCTION_SCHEMA)


def test_a_language_of_one_shard_is_linked_into_place_as_mix_wrote_it(tmp_path, monkeypatch):
    monkeypatch.setattr(write_shards, "ROW_GROUP_BYTES", 20_000)  # a few row groups
    rows = instruction_rows(450)
    write_language(tmp_path, "deu_Latn", rows)
    train = ready_shard(tmp_path, "train", "deu_Latn")
    assert train.exists() and ready_shard(tmp_path, "test", "deu_Latn").exists()
    assert not ready_shard(tmp_path, "validation", "deu_Latn").exists()  # no rows, no file
    assert not (tmp_path / "instructions").exists()  # and no other file of the language
    plan = shard_plan(tmp_path, 1 << 30)
    assert [(job["split"], job["rows"], job["shards"]) for job in plan] == [("train", 440, 1), ("test", 10, 1)]
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    expected = tmp_path / "expected.parquet"  # what the shards stage writes from the language's train rows
    write_shard(expected, rows.filter(pc.equal(rows["split"], "train")))
    list(WriteShards(tmp_path / "plan.json", tmp_path / "out", tmp_path / "parts").run())
    shard = tmp_path / "out" / "data" / "deu_Latn" / "train-00000-of-00001.parquet"
    assert shard.read_bytes() == expected.read_bytes()
    ids = pq.read_table(shard).column("id").to_pylist()
    assert ids == sorted(ids) and pq.read_metadata(shard).num_row_groups > 1
    assert train.exists() and train.stat().st_ino == shard.stat().st_ino  # linked, not moved nor copied

    shard.unlink()  # a task run again: the same file again
    list(WriteShards(tmp_path / "plan.json", tmp_path / "out", tmp_path / "parts").run())
    assert shard.read_bytes() == expected.read_bytes()


def test_row_groups_follow_the_text_not_how_the_rows_were_built(tmp_path, monkeypatch):
    monkeypatch.setattr(write_shards, "ROW_GROUP_BYTES", 20_000)
    rows = instruction_rows(450)
    size = text_bytes(rows)
    contents = sum(len(m["content"]) + len(m["role"]) for turns in rows["messages"].to_pylist() for m in turns)
    assert size == contents + sum(len(v.encode()) for name in rows.schema.names if name != "messages" for v in rows[name].to_pylist())
    pq.write_table(rows, tmp_path / "rows.parquet", row_group_size=7)  # the same rows in chunks, read back from a file
    assert text_bytes(pq.read_table(tmp_path / "rows.parquet")) == size
    assert text_bytes(pa.concat_tables([rows.slice(0, 100), rows.slice(100)])) == size
    write_shard(tmp_path / "shard.parquet", rows)
    assert pq.read_metadata(tmp_path / "shard.parquet").num_row_groups == -(-450 // write_shards.row_group_rows(size, 450))