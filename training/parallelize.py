"""Process group, model construction on the meta device, FSDP2 sharding, and the one load from rank 0.

The model is built without memory (meta device), each decoder layer and then the root are sharded with
`fully_shard`, the shards are materialized on the device, and rank 0's full weights (from a Hugging Face folder,
or a seeded random init for tests and benchmarks) are broadcast into them. So no rank ever holds two copies and
the weights do not depend on the number of ranks.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def init_distributed(device: torch.device) -> DeviceMesh:
    """Joins the process group torchrun (or the Ray launcher) described in the environment; a lone process
    without that environment becomes a group of one, so the same code path runs everywhere."""
    if not dist.is_initialized():
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
        os.environ.setdefault("RANK", "0")
        os.environ.setdefault("WORLD_SIZE", "1")
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    return init_device_mesh(device.type, (dist.get_world_size(),), mesh_dim_names=("dp",))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def model_config(model_cfg):
    """The transformers config of the model: from the model folder, or from the inline keyword arguments."""
    from transformers import AutoConfig

    if model_cfg.name_or_path:
        config = AutoConfig.from_pretrained(model_cfg.name_or_path)
    else:
        kwargs = dict(model_cfg.config)
        model_type = kwargs.pop("model_type", "llama")
        config = AutoConfig.for_model(model_type, **kwargs)
    config.use_cache = False
    return config


def full_state_dict_on_rank0(model_cfg, config, seed: int) -> dict:
    """Rank 0's complete fp32 weights: read from the model folder, or a random init seeded by `seed`."""
    from transformers import AutoModelForCausalLM

    if model_cfg.name_or_path:
        model = AutoModelForCausalLM.from_pretrained(model_cfg.name_or_path, dtype=torch.float32, config=config)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    return model.state_dict()


def build_model(
    model_cfg,
    mesh: DeviceMesh,
    device: torch.device,
    *,
    param_dtype: str = "bfloat16",
    reduce_dtype: str = "float32",
    activation_checkpointing: bool = False,
    compile: bool = False,
    seed: int = 0,
    full_state_dict: dict | None = None,
) -> nn.Module:
    """The sharded model on `device`. `full_state_dict` (rank 0's weights) saves rebuilding them when the same
    model is built more than once in a process (the benchmark's eager and compiled runs)."""
    from transformers import AutoModelForCausalLM

    config = model_config(model_cfg)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(
            config, dtype=torch.float32, attn_implementation=model_cfg.attn_implementation
        )
    layers = decoder_layers(model)
    for index, layer in enumerate(layers):
        if activation_checkpointing:
            from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

            layer = checkpoint_wrapper(layer, preserve_rng_state=False)
            layers[index] = layer
        if compile:
            # In place, so parameter names (and so checkpoints and exports) stay those of the plain model.
            layer.compile()
    policy = MixedPrecisionPolicy(param_dtype=DTYPES[param_dtype], reduce_dtype=DTYPES[reduce_dtype])
    for layer in layers:
        fully_shard(layer, mesh=mesh, mp_policy=policy)
    fully_shard(model, mesh=mesh, mp_policy=policy)

    model.to_empty(device=device)
    full = {}
    if dist.get_rank() == 0:
        full = full_state_dict if full_state_dict is not None else full_state_dict_on_rank0(model_cfg, config, seed)
    # A copy of the mapping: the broadcast replaces its entries with the loaded shards.
    set_model_state_dict(model, dict(full), options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    del full
    reinit_rotary_buffers(model, device)
    return model


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of a transformers causal LM (model.model.layers for the Llama family)."""
    base = getattr(model, model.base_model_prefix, model)
    layers = getattr(base, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"{type(model).__name__}: no decoder layers found at {model.base_model_prefix}.layers")
    return layers


def reinit_rotary_buffers(model: nn.Module, device: torch.device) -> None:
    """to_empty() leaves non-persistent buffers (rotary inv_freq) uninitialized and they are in no state dict,
    so each rotary module is rebuilt on the device and its buffers copied over."""
    for module in model.modules():
        if "inv_freq" not in dict(module.named_buffers(recurse=False)):
            continue
        fresh = type(module)(config=module.config)  # built on the CPU: a few floats
        for name, buffer in fresh.named_buffers(recurse=False):
            setattr(module, name, buffer.to(device))
        for name in ("attention_scaling", "original_inv_freq"):
            if hasattr(fresh, name) and name not in dict(fresh.named_buffers(recurse=False)):
                setattr(module, name, getattr(fresh, name))
