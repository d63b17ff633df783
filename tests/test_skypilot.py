"""skypilot/*.yaml through SkyPilot's own parser (sky.Task), offline, plus what it lets through.

SkyPilot runs in its own environment (scripts/test-envs.sh; its pins clash
with the test venv), in a subprocess whose HOME holds a tiny accelerator
catalog (SkyPilot would otherwise download its catalog to resolve --gpus). Its parser catches schema
and value errors; `problems()` catches what it accepts but a user must not get
(a secret in envs, an image that is not docker:, a short cold-start delay...).
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
from pathlib import Path

import pytest

from entrypoint import __version__
from entrypoint.settings import SETTINGS
from tests.support.cli import clean_env, pinned_version, run_cli
from tests.support.paths import ROOT, TESTS

YAMLS = sorted((ROOT / "skypilot").glob("*.yaml"))
BROKEN = TESTS / "fixtures" / "broken"
# The settings, plus what only the YAML uses: Hugging Face's own cache folder and the bucket name that
# SkyPilot substitutes into file_mounts.
KNOWN_VARIABLES = {s.name for s in SETTINGS} | {"HF_HOME", "HF_CACHE_BUCKET"}
BUCKET = {"HF_CACHE_BUCKET": "ie-test-hf-cache"}
SECRETS = {"HF_TOKEN", "API_KEY"}
CATALOG = "AcceleratorName,Clouds\nH100,\"['AWS', 'GCP', 'Azure']\"\nH200,\"['AWS', 'GCP']\"\n"


def run_check(engine_envs, home: Path, request: dict) -> dict:
    """tests/engines/skypilot_check.py in SkyPilot's environment, with a HOME of its own."""
    result = subprocess.run(
        [
            str(engine_envs["skypilot"] / "bin" / "python"),
            str(TESTS / "engines" / "skypilot_check.py"),
            json.dumps(request),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "SKY_RUNTIME_DIR": str(home)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def sky(engine_envs, tmp_path_factory):
    home = tmp_path_factory.mktemp("sky-home")
    catalog = home / ".sky" / "catalogs" / "v8" / "common" / "accelerators.csv"
    catalog.parent.mkdir(parents=True)
    catalog.write_text(CATALOG)
    return lambda files, **overrides: run_check(engine_envs, home, {"files": [str(f) for f in files], **overrides})


@pytest.fixture(scope="module")
def sky_config(engine_envs, tmp_path_factory):
    home = tmp_path_factory.mktemp("sky-config-home")
    return lambda path, **request: run_check(engine_envs, home, {"config": str(path), **request})


def image_tag(engine: str) -> str:
    return f"{engine}-{pinned_version(engine)}-{__version__}"


def problems(task: dict) -> list[str]:
    found = []
    leaked = SECRETS & set(task["envs"])
    if leaked:
        found.append(f"secrets written into envs: {sorted(leaked)}")
    if not set(task["secrets"]) >= SECRETS:
        found.append(f"HF_TOKEN and API_KEY must be secrets, got {task['secrets']}")
    unknown = set(task["envs"]) - KNOWN_VARIABLES
    if unknown:
        found.append(f"envs the entrypoint does not read: {sorted(unknown)}")
    if task["envs"].get("REQUIRE_API_KEY") != "true":
        found.append("REQUIRE_API_KEY is not true on an exposed port")
    for given in task["image_ids"]:
        image = (given or {}).get("null") or (given or {}).get(None) or ""
        if not image.startswith("docker:ghcr.io/") or not image.endswith(
            tuple(image_tag(e) for e in ("sglang", "vllm"))
        ):
            found.append(f"image_id {image!r} is not docker:<registry>/...:<engine>-<engine version>-<project version>")
    if task["ports"] != [["8000"]]:
        found.append(f"ports are {task['ports']}, not 8000")
    if task["run"].strip() != "exec python3 -m entrypoint":
        found.append(f"run is not the image's entrypoint: {task['run']!r}")
    for dst, mount in task["storage_mounts"].items():
        if dst != task["envs"].get("HF_HOME"):
            found.append(f"bucket mounted at {dst}, but HF_HOME is {task['envs'].get('HF_HOME')!r}")
        if mount["mode"] != "MOUNT_CACHED":
            found.append(f"the cache bucket is mounted {mount['mode']}; MOUNT_CACHED writes locally first")
    if any((size or 0) < 512 for size in task["disk_size"]):
        found.append(f"disk_size {task['disk_size']} is too small for large checkpoints")
    service = task["service"]
    if service is not None:
        if service["initial_delay_seconds"] < 1200:
            found.append("initial_delay_seconds is shorter than a cold start (20 min)")
        if service["readiness_path"] != "/v1/chat/completions" or not service["post_data"]:
            found.append("the readiness probe does not send a chat request")
    return found


def test_every_yaml_parses_and_is_sound(sky):
    results = sky(YAMLS, env_overrides=BUCKET)
    assert {Path(path).name for path in results} == {"endpoint.yaml", "serve.yaml", "multinode.yaml"}
    for path, result in results.items():
        assert result["ok"], f"{path}: {result['error']}"
        assert problems(result["task"]) == [], path


def test_serve_probe_is_a_real_chat_with_the_key(sky):
    serve = str(ROOT / "skypilot" / "serve.yaml")
    task = sky([serve], secrets_overrides={"API_KEY": "sk-launch-0123456789abcdef"}, env_overrides=BUCKET)[serve][
        "task"
    ]
    service = task["service"]
    assert service["readiness_headers"] == {
        "Authorization": "Bearer sk-launch-0123456789abcdef"
    }  # SkyPilot substituted it
    assert service["post_data"]["model"] == task["envs"]["SERVED_MODEL_NAME"]
    assert service["min_replicas"] >= 1 and service["max_replicas"] > service["min_replicas"]
    assert task["use_spot"] == [True] and service["dynamic_ondemand_fallback"] is True


def test_serve_keeps_the_hugging_face_cache_in_a_bucket(sky):
    """Replicas come and go; the weights stay in the bucket, where HF_HOME points (the fake-Hub test in
    test_endpoint_cpu.py proves a second start with the same HF_HOME downloads nothing)."""
    serve = str(ROOT / "skypilot" / "serve.yaml")
    task = sky([serve], env_overrides=BUCKET)[serve]["task"]
    assert task["storage_mounts"] == {
        task["envs"]["HF_HOME"]: {"name": BUCKET["HF_CACHE_BUCKET"], "source": None, "mode": "MOUNT_CACHED"}
    }
    missing = sky([serve])[serve]
    assert not missing["ok"] and "'HF_CACHE_BUCKET' is None" in missing["error"] and "--env" in missing["error"]


def test_multinode_shape(sky):
    task = sky([ROOT / "skypilot" / "multinode.yaml"])[str(ROOT / "skypilot" / "multinode.yaml")]["task"]
    assert task["num_nodes"] == 2 and task["accelerators"] == [{"H100": 8}]


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        ("skypilot-num-nodes.yaml", "'two' is not of type 'integer'"),
        ("skypilot-portz.yaml", "did you mean 'ports'"),
    ],
)
def test_skypilot_rejects_broken_copies(sky, broken, error):
    result = sky([BROKEN / broken])[str(BROKEN / broken)]
    assert not result["ok"] and error in result["error"]


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        ("skypilot-token-in-envs.yaml", "secrets written into envs"),
        ("skypilot-image-not-docker.yaml", "is not docker:"),
        ("skypilot-short-delay.yaml", "shorter than a cold start"),
        ("skypilot-cache-not-hf-home.yaml", "but HF_HOME is"),
    ],
)
def test_our_checks_reject_what_skypilot_accepts(sky, broken, problem):
    result = sky([BROKEN / broken])[str(BROKEN / broken)]
    assert result["ok"], result.get("error")
    assert any(problem in found for found in problems(result["task"]))


def test_run_blocks_pass_shellcheck(sky):
    shellcheck = Path(sys.executable).parent / "shellcheck"
    for path, result in sky(YAMLS, env_overrides=BUCKET).items():
        checked = subprocess.run(
            [str(shellcheck), "-s", "bash", "-f", "gcc", "-"],
            input=result["task"]["run"],
            capture_output=True,
            text=True,
        )
        assert checked.returncode == 0, f"{path}: {checked.stdout}"


@pytest.mark.parametrize("rank", [0, 1])
def test_what_each_node_runs(sky, models, fake_gpus, tmp_path, rank):
    """The multinode YAML's envs plus what SkyPilot sets on a node, through the real entrypoint."""
    task = sky([ROOT / "skypilot" / "multinode.yaml"])[str(ROOT / "skypilot" / "multinode.yaml")]["task"]
    env = clean_env(
        tmp_path,
        **{
            **task["envs"],
            "TARGET_MODEL": str(models("Llama-3.1-405B-Instruct")),
            "API_KEY": "sk-node-0123456789abcdef",
            "SKYPILOT_NUM_NODES": "2",
            "SKYPILOT_NODE_RANK": str(rank),
            "SKYPILOT_NODE_IPS": "10.1.0.5\n10.1.0.6",
            **fake_gpus("h100x8"),
        },
    )
    result = run_cli(["plan", "--json"], env)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert (plan["nodes"], plan["tp"], plan["pp"]) == (2, 8, 2)
    argv = " ".join(plan["argv"])
    assert f"--nnodes 2 --node-rank {rank} --dist-init-addr 10.1.0.5:29501" in argv
    assert "sk-node-0123456789abcdef" not in result.stdout


def test_endpoint_refuses_to_start_without_a_key(sky, models, tmp_path):
    task = sky([ROOT / "skypilot" / "endpoint.yaml"])[str(ROOT / "skypilot" / "endpoint.yaml")]["task"]
    env = clean_env(
        tmp_path, **{**task["envs"], "TARGET_MODEL": str(models("Qwen2.5-7B-Instruct")), "ACCELERATORS": "H100:1"}
    )
    result = run_cli([], env)
    assert result.returncode == 11 and "REQUIRE_API_KEY=false" in result.stderr
    assert run_cli(["plan"], env).returncode == 0  # planning needs no key


RESTRICTED = ROOT / "skypilot" / "sky-config" / "aws-restricted-port.yaml"


@pytest.mark.parametrize(
    ("config", "matches"),
    [
        (RESTRICTED, True),
        (BROKEN / "sky-config-empty-group.yaml", False),
    ],
)
def test_restricted_port_config_is_read_by_skypilot(sky_config, config, matches):
    """The README's way to narrow port 8000 on AWS: SkyPilot's own loader accepts the snippet, and a cluster
    named like the README's (`-c llm`) gets the security group, so SkyPilot opens no port itself."""
    result = sky_config(config, cloud="aws", region="us-east-1", keys=["security_group_name"])
    if not matches:
        assert not result["ok"] and "security_group_name" in result["error"]
        return
    assert result["ok"], result["error"]
    # sky/clouds/aws.py picks the first pattern that fnmatchcase()es the cluster's name.
    groups = [
        group for entry in result["value"] for pattern, group in entry.items() if fnmatch.fnmatchcase("llm", pattern)
    ]
    assert groups[:1] == ["inference-endpoint-restricted"]
