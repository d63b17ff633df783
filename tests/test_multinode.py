"""Multi-node: SkyPilot's variables -> nodes in the plan -> each engine's flags, for every rank."""

from __future__ import annotations

import json

import pytest

from entrypoint import launch
from entrypoint.engines import ENGINES
from entrypoint.errors import DoesNotFitError, SettingError, UnsupportedByEngineError
from entrypoint.hardware.resolve import resolve as resolve_hardware
from entrypoint.settings import load
from tests.support.cli import clean_env, run_cli
from tests.support.planning import plan_env

IPS = "10.0.0.1\n10.0.0.2"


def node_env(models, engine: str, rank: int, name: str = "Llama-3.1-405B-Instruct", nodes: int = 2) -> dict:
    ips = "\n".join(f"10.0.0.{n + 1}" for n in range(nodes))
    return {
        "TARGET_MODEL": str(models(name)),
        "ENGINE": engine,
        "ACCELERATORS": "H100:8",
        "SKYPILOT_NUM_NODES": str(nodes),
        "SKYPILOT_NODE_RANK": str(rank),
        "SKYPILOT_NODE_IPS": ips,
        "PATH": "/nonexistent",
    }  # no nvidia-smi: plan from ACCELERATORS


def command_for(models, engine: str, rank: int, **kwargs):
    env = node_env(models, engine, rank, **kwargs)
    hardware = resolve_hardware(load(env), ENGINES[engine], env)
    settings, plan = plan_env(env, hardware=hardware)
    return plan, launch.engine_command(ENGINES[engine], settings, plan)


def test_405b_bf16_does_not_fit_one_node_and_fits_two(models):
    with pytest.raises(DoesNotFitError, match=r"Llama-3\.1-405B"):
        plan_env({"TARGET_MODEL": str(models("Llama-3.1-405B-Instruct")), "ACCELERATORS": "H100:8"})
    plan, _ = command_for(models, "sglang", 0)
    assert (plan.nodes, plan.tp, plan.pp, plan.dp, plan.gpu_count) == (2, 8, 2, 1, 16)


@pytest.mark.parametrize("rank", [0, 1])
def test_sglang_flags_for_every_rank(models, rank):
    _, command = command_for(models, "sglang", rank)
    argv = " ".join(command.argv)
    assert f"--tp-size 8 --pp-size 2 --dp-size 1 --nnodes 2 --node-rank {rank} --dist-init-addr 10.0.0.1:29501" in argv


@pytest.mark.parametrize("rank", [0, 1, 2, 3])
def test_vllm_flags_for_every_rank(models, rank):
    _, command = command_for(models, "vllm", rank, nodes=4)
    argv = list(command.argv)
    joined = " ".join(argv)
    assert f"--nnodes 4 --node-rank {rank} --master-addr 10.0.0.1 --master-port 29501" in joined
    assert ("--headless" in argv) == (rank != 0)  # only the head serves HTTP


@pytest.mark.engines
@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_every_rank_parses_with_the_engine(models, engine_parser, engine):
    argvs = [
        list(command_for(models, engine, rank, nodes=nodes)[1].argv[3:]) for nodes in (2, 4) for rank in range(nodes)
    ]
    parsed = engine_parser(engine, argvs)
    assert all(result["ok"] for result in parsed["results"]), parsed["results"]
    ranks = [result["args"]["node_rank"] for result in parsed["results"]]
    assert ranks == [0, 1, 0, 1, 2, 3]
    key = {"sglang": "nnodes", "vllm": "nnodes"}[engine]
    assert [result["args"][key] for result in parsed["results"]] == [2, 2, 4, 4, 4, 4]


@pytest.mark.parametrize(
    ("env", "text"),
    [
        ({"SKYPILOT_NODE_RANK": "2"}, "SKYPILOT_NODE_RANK=2 is not below SKYPILOT_NUM_NODES=2"),
        ({"SKYPILOT_NODE_IPS": "10.0.0.1"}, "SKYPILOT_NODE_IPS lists 1 address(es)"),
    ],
)
def test_inconsistent_cluster_variables(models, env, text):
    settings = load({**node_env(models, "vllm", 0), **env})
    with pytest.raises(SettingError, match=text.replace("(", r"\(").replace(")", r"\)")):
        resolve_hardware(settings, ENGINES["vllm"], {"PATH": "/nonexistent"})


def test_cpu_path_is_one_node(models, tmp_path):
    env = clean_env(
        tmp_path,
        TARGET_MODEL=str(models("Qwen2.5-7B-Instruct")),
        ENGINE="vllm",
        ACCELERATORS="cpu",
        SKYPILOT_NUM_NODES="2",
        SKYPILOT_NODE_IPS=IPS,
    )
    result = run_cli(["plan"], env)
    assert result.returncode == UnsupportedByEngineError.exit_code
    assert "num_nodes: 1" in result.stderr


def test_skypilot_gpu_count_is_cross_checked(models, fake_gpus, tmp_path):
    env = clean_env(
        tmp_path, TARGET_MODEL=str(models("Qwen2.5-7B-Instruct")), SKYPILOT_NUM_GPUS_PER_NODE="4", **fake_gpus("h100x8")
    )
    result = run_cli(["plan", "--json"], env)
    assert result.returncode == 0, result.stderr
    warnings = json.loads(result.stdout)["warnings"]
    assert any("SkyPilot allocated 4 GPU(s) per node, but the plan uses 8" in warning for warning in warnings)
    env["SKYPILOT_NUM_GPUS_PER_NODE"] = "8"
    assert not any("SkyPilot allocated" in w for w in json.loads(run_cli(["plan", "--json"], env).stdout)["warnings"])
