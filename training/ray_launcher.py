"""The same training with Ray Train, for clusters that run Ray instead of torchrun.

    python -m training.ray_launcher --workers 8 --gpus-per-worker 1 --config x.yaml [section.key=value ...]
    python -m training.ray_launcher --address auto ...      # an existing cluster (default: a local Ray)

A `ray.train.torch.TorchTrainer` starts `--workers` workers in a placement group (ScalingConfig), sets up their
process group (gloo on CPUs, NCCL on GPUs) and the variables torchrun would set (RANK, WORLD_SIZE, LOCAL_RANK...),
and each worker calls `training.train.train` with the same configuration, so the two launchers run the same code.

Restarts: when a worker dies or fails, Ray Train stops the group and starts a new one, up to `--max-failures` times
(FailureConfig). The new group resumes from the newest verified checkpoint in `checkpoint.folder`, as a rerun of
torchrun would: that folder stays the one source of truth for resume, on local disk or object storage. Ray Train's
own run state (RunConfig storage_path/name) holds no model checkpoint; our checkpoints are not reported to it.
The code reaches the workers through Ray's runtime environment (py_modules), not a shared folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The config keys that name a file or folder: relative ones are made absolute on the driver, since the workers do
# not run in the driver's directory.
PATH_KEYS = (("data", "path"), ("checkpoint", "folder"), ("checkpoint", "export_folder"), ("logging", "folder"))


def absolute_paths(values: dict) -> dict:
    """The config's sections with every relative local path made absolute (URLs such as s3:// are left as they
    are)."""
    values = {section: dict(keys) if isinstance(keys, dict) else keys for section, keys in values.items()}
    for section, key in PATH_KEYS:
        path = values[section][key]
        if path and "://" not in path and not Path(path).is_absolute():
            values[section][key] = str(Path(path).absolute())
    return values


def train_loop(values: dict) -> None:
    """What each Ray Train worker runs: the process group is set up already (init_distributed joins it)."""
    import ray.train

    from training.config import from_dict
    from training.train import train

    result = train(from_dict(values, "ray_launcher"))
    # Every worker reports (Ray Train waits for all); rank 0's final metrics become the result's.
    ray.train.report({k: v for k, v in result.items() if isinstance(v, (int, float, str))})


def make_trainer(config, workers: int, *, gpus_per_worker: float = 0, cpus_per_worker: float = 1,
                 storage_path: str | None = None, name: str | None = None, max_failures: int = 3):
    """A TorchTrainer that runs `config` (a training.config.Config) on `workers` workers."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    resources = {"CPU": cpus_per_worker, **({"GPU": gpus_per_worker} if gpus_per_worker else {})}
    return TorchTrainer(
        train_loop,
        train_loop_config=absolute_paths(config.to_dict()),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpus_per_worker > 0,
                                     resources_per_worker=resources),
        run_config=RunConfig(storage_path=storage_path, name=name,
                             failure_config=FailureConfig(max_failures=max_failures)),
    )


def launch(config, workers: int, **options):
    """Runs `config` with Ray Train on the current Ray session; returns its ray.train.Result."""
    return make_trainer(config, workers, **options).fit()


def connect(address: str | None) -> None:
    """Joins the cluster at `address` (or starts a local Ray) with this repository's packages shipped to the
    workers through the runtime environment."""
    import ray

    from pipelines.runtime import code_runtime_env

    ray.init(address=address, runtime_env=code_runtime_env({"OMP_NUM_THREADS": "1"}), log_to_driver=True)


def main(argv: list[str] | None = None) -> int:
    from training.config import ConfigError, load

    parser = argparse.ArgumentParser(prog="python -m training.ray_launcher", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--gpus-per-worker", type=float, default=0)
    parser.add_argument("--cpus-per-worker", type=float, default=1)
    parser.add_argument("--address", default=None, help="an existing Ray cluster (auto, or host:port)")
    parser.add_argument("--storage-path", default=None,
                        help="where Ray Train keeps its run state (a folder every node sees, or s3://...; "
                             "default ~/ray_results)")
    parser.add_argument("--name", default=None, help="the run's name under --storage-path (default: generated)")
    parser.add_argument("--max-failures", type=int, default=3,
                        help="restarts of the worker group after a failure, each from the last checkpoint")
    args, overrides = parser.parse_known_args(argv)
    try:
        config = load(args.config, overrides)
        if not config.data.path.startswith("hf://"):  # bad data fails here, not in each worker of each restart
            from training.data import resolve_files

            resolve_files(config.data)
    except (ConfigError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    import ray
    from ray.train import TrainingFailedError

    connect(args.address)
    try:
        result = launch(config, args.workers, gpus_per_worker=args.gpus_per_worker,
                         cpus_per_worker=args.cpus_per_worker, storage_path=args.storage_path, name=args.name,
                         max_failures=args.max_failures)
    except TrainingFailedError as error:
        print(f"error: training failed after {args.max_failures} restarts: {error}", file=sys.stderr)
        return 1
    finally:
        ray.shutdown()
    print(f"done: Ray Train's run state in {result.path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
