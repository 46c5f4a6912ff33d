"""The same training on Ray workers, for clusters that run Ray instead of torchrun.

    python -m training.ray_launcher --workers 8 --gpus-per-worker 1 --config x.yaml [section.key=value ...]
    python -m training.ray_launcher --address auto ...      # an existing cluster (default: a local Ray)

Each worker is a Ray actor that sets what torchrun would (MASTER_ADDR/MASTER_PORT of worker 0, RANK,
WORLD_SIZE, LOCAL_RANK) and calls `training.train.train` with the same configuration, so the two launchers run
the same code. Ray gives each actor its own GPU (CUDA_VISIBLE_DEVICES), hence LOCAL_RANK 0 everywhere.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

import ray


@ray.remote
class TrainWorker:
    def address(self) -> tuple[str, int]:
        """This node's address and a free port on it, for worker 0 to host the process group."""
        with socket.socket() as sock:
            sock.bind(("", 0))
            port = sock.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def train(self, config: dict, rank: int, world_size: int, master: tuple[str, int]) -> dict:
        os.environ.update(
            MASTER_ADDR=master[0], MASTER_PORT=str(master[1]), RANK=str(rank), WORLD_SIZE=str(world_size),
            LOCAL_RANK="0",
        )
        import torch.distributed as dist

        from training.config import from_dict
        from training.train import train

        try:
            return train(from_dict(config, "ray_launcher"))
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()


def launch(config, workers: int, *, gpus_per_worker: float = 0, cpus_per_worker: float = 1) -> list[dict]:
    """Runs `config` (a training.config.Config) on `workers` Ray actors of the current Ray session; returns
    each rank's final metrics."""
    actors = [
        TrainWorker.options(num_gpus=gpus_per_worker, num_cpus=cpus_per_worker).remote() for _ in range(workers)
    ]
    master = ray.get(actors[0].address.remote())
    values = config.to_dict()
    return ray.get([actor.train.remote(values, rank, workers, master) for rank, actor in enumerate(actors)])


def main(argv: list[str] | None = None) -> int:
    from training.config import ConfigError, load

    parser = argparse.ArgumentParser(prog="python -m training.ray_launcher", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--gpus-per-worker", type=float, default=0)
    parser.add_argument("--cpus-per-worker", type=float, default=1)
    parser.add_argument("--address", default=None, help="an existing Ray cluster (auto, or ray://host:port)")
    args, overrides = parser.parse_known_args(argv)
    try:
        config = load(args.config, overrides)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    ray.init(address=args.address)
    try:
        results = launch(config, args.workers, gpus_per_worker=args.gpus_per_worker,
                         cpus_per_worker=args.cpus_per_worker)
    finally:
        ray.shutdown()
    print(f"done: {results[0]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
