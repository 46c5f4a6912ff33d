"""`--recipe bayling2 --plan` against the loopback Hub serving every source of the recipe.

    python tests/benchmarks/bench_plan.py

Every instruction preset (in its real schema, a few dozen rows each), an OPUS-100 look-alike and a gated FLORES+
are uploaded to the loopback Hub (tests/hub_server.py, the fixtures of tests/pipelines/test_hub_instructions.py);
then the plan command runs once, in a fresh process (HF_ENDPOINT is read at import). Prints the command's wall time
(imports included) and the plan's own time (resolving, footers, mixture, plot).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from huggingface_hub import constants

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.hub_server import HubServer  # noqa: E402
from tests.pipelines.test_hub_instructions import TOKEN, serve_bayling2  # noqa: E402


def main() -> None:
    constants.HF_HUB_DISABLE_XET = True
    with tempfile.TemporaryDirectory() as tmp, HubServer(Path(tmp) / "hub") as hub:
        serve_bayling2(hub, Path(tmp))
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(Path(tmp) / "hf-home"), "HF_TOKEN": TOKEN}
        command = [sys.executable, str(REPO / "pipelines" / "build.py"), "--recipe", "bayling2", "--plan", "--output", str(Path(tmp) / "plan")]
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        seconds = time.perf_counter() - started
        if done.returncode:
            sys.exit(done.stderr[-3000:])
        plan = json.loads((Path(tmp) / "plan" / "plan.json").read_text())
        requests = len(hub.events)
    print(f"--recipe bayling2 --plan: {seconds:.2f} s wall (imports included), {plan['seconds']:.2f} s in the plan; "
          f"{len(plan['sources'])} sources, {requests} Hub requests")  # fmt: skip


if __name__ == "__main__":
    main()
