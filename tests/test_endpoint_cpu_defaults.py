"""The CPU path with default memory settings: what a user gets from `docker run -e ACCELERATORS=cpu` with no
MEM_FRACTION or MAX_MODEL_LEN. The plan sizes the KV cache from what the vLLM CPU worker will find available
on its NUMA node (hardware.host), so the real server accepts it, and allocates exactly the planned figure.

Its own module, so that no other server of the e2e tests holds memory while this one sizes itself.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.support.cli import free_port, run_cli
from tests.support.endpoint import Endpoint, endpoint_env

pytestmark = pytest.mark.e2e


def test_default_memory_settings_start_the_real_cpu_server(engine_envs, tiny_model, tmp_path):
    env = endpoint_env(tmp_path, tiny_model, free_port(), MEM_FRACTION=None, MAX_MODEL_LEN=None)
    planned = run_cli(["plan", "--json"], env)
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    kv_gib = int(plan["engine_env"]["VLLM_CPU_KVCACHE_SPACE"])
    assert kv_gib == plan["memory_per_gpu"]["kv_cache_bytes"] // 2**30 >= 1
    assert any("available now" in reason for reason in plan["reasons"])
    server = Endpoint(engine_envs["vllm"] / "bin" / "python", env, tmp_path / "server.log")
    try:
        server.wait_healthy()
        reply = server.client().completions.create(model="tiny", prompt="Hello", max_tokens=4)
        assert reply.choices[0].text is not None
    finally:
        server.stop()
    # vLLM 0.32's CPU worker: "Explicitly set (X/Y) GiB for KV cache on node N." — the plan's figure, accepted.
    allocated = re.search(r"Explicitly set \(([\d.]+)/([\d.]+)\) GiB for KV cache on node (\d+)", server.log())
    assert allocated, server.log()[-4000:]
    assert float(allocated.group(1)) == pytest.approx(kv_gib)
    assert float(allocated.group(2)) == pytest.approx(plan["gpu_memory_bytes"] / 2**30, abs=0.01)
