"""The stage list (pipelines/stages.py) is what a build runs: which stages apply, in which order and with how many
tasks, read from the declarations alone, without running a build."""

import json

import pytest

from pipelines import recipe as recipes
from pipelines.staging import Staging
from pipelines.stages import STAGES, BuildContext

PAIRS = {"type": "udhr"}


def context(tmp_path, recipe: dict, x_langs: list[str], shards: list[int], tasks: int = 3) -> BuildContext:
    """A build's context before its stages run, with the shard plan `shards` (shards per config) already written,
    as the mix stage's planning would have."""
    built = BuildContext(recipes.parse({"name": "x", **recipe}), x_langs, [x_langs] if recipe.get("parallel") else [], [],
                         Staging(tmp_path / "v1.0.0", "key"), {}, tasks)  # fmt: skip
    built.work.mkdir(parents=True)
    (built.work / "shards.json").write_text(json.dumps([{"config": "deu_Latn", "split": "train", "shards": n} for n in shards]))
    return built


def instructions(tmp_path, chunks: int) -> dict:
    files = []
    for number in range(chunks):
        path = tmp_path / f"chat{number}.jsonl"
        path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}) + "\n")
        files.append({"format": "messages", "path": str(path), "lang": "eng_Latn", "name": f"c{number}"})
    return {"instructions": files}


def applying(built: BuildContext) -> list[str]:
    return [stage.name for stage in STAGES if stage.applies(built)]


def test_stages_are_declared_in_build_order():
    assert [stage.name for stage in STAGES] == ["pivot", "pairs", "chat", "chat_dedup", "mix", "shard_parts", "shards", "manifest"]


def test_a_pairs_only_recipe_runs_no_chat_stage(tmp_path):
    built = context(tmp_path, {"parallel": [PAIRS]}, ["deu_Latn", "zho_Hans"], shards=[1, 1])
    assert applying(built) == ["pivot", "pairs", "mix", "shards", "manifest"]
    assert {stage.name: stage.tasks(built) for stage in STAGES if stage.name in ("pivot", "pairs", "manifest")} == {
        "pivot": 1, "pairs": 3, "manifest": 1,
    }  # fmt: skip


def test_a_recipe_with_instructions_and_several_shards_runs_every_stage(tmp_path):
    built = context(tmp_path, {"parallel": [PAIRS], **instructions(tmp_path, chunks=2)}, ["deu_Latn", "zho_Hans"], shards=[1, 2])
    assert applying(built) == ["pivot", "pairs", "chat", "chat_dedup", "mix", "shard_parts", "shards", "manifest"]
    chat = next(stage for stage in STAGES if stage.name == "chat")
    assert chat.tasks(built) == 2  # no more tasks than chunks of instructions


def test_an_instructions_only_recipe_runs_no_pair_stage(tmp_path):
    built = context(tmp_path, instructions(tmp_path, chunks=1), [], shards=[1])
    assert applying(built) == ["chat", "chat_dedup", "mix", "shards", "manifest"]


@pytest.mark.parametrize(("x_langs", "expected"), [(["zho_Hans"], ["pivot"]), (["deu_Latn"], ["pairs"])])
def test_the_pivot_stage_runs_only_for_zho_hans(tmp_path, x_langs, expected):
    built = context(tmp_path, {"parallel": [PAIRS]}, x_langs, shards=[1])
    assert [name for name in applying(built) if name in ("pivot", "pairs")] == expected
    assert built.other_langs == [lang for lang in x_langs if lang != "zho_Hans"]


def test_pairs_without_a_pivot_side_are_reported_by_one_stage_only(tmp_path):
    """The pivot stage's reader reports them only when no pairs stage runs."""
    stage = {stage.name: stage for stage in STAGES}
    alone = context(tmp_path / "alone", {"parallel": [PAIRS]}, ["zho_Hans"], shards=[1])
    both = context(tmp_path / "both", {"parallel": [PAIRS]}, ["deu_Latn", "zho_Hans"], shards=[1])
    assert stage["pivot"].steps(alone)[0].removed is not None
    assert stage["pivot"].steps(both)[0].removed is None and stage["pairs"].steps(both)[0].removed is not None
