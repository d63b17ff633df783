"""The planner on generated checkpoints of real models (published configs, header-only weights)."""

from __future__ import annotations

import pytest

from entrypoint.errors import DoesNotFitError, SettingError, UnsupportedByEngineError
from entrypoint.hardware.catalog import Accelerators, lookup
from entrypoint.hardware.types import Hardware, from_accelerators
from entrypoint.layout import valid_tensor_parallel_sizes
from tests.support.planning import plan_env


def plan_for(models, name: str, accelerators: str, **env: str):
    return plan_env({"TARGET_MODEL": str(models(name)), "ACCELERATORS": accelerators, **env})[1]


# (model, accelerators, settings) -> (tp, pp, dp, ep, max_model_len)
REFERENCE = [
    # The four configurations users try first (issue #2).
    ("Qwen2.5-7B-Instruct", "A100:1", {}, (1, 1, 1, 1, 32768)),
    ("Mixtral-8x7B-Instruct-v0.1", "A100-80GB:2", {}, (2, 1, 1, 2, 32768)),
    ("Qwen3-14B-FP8", "H100:1", {}, (1, 1, 1, 1, 40960)),
    ("Llama-3.1-70B-Instruct", "A100-80GB:4", {}, (4, 1, 1, 1, 131072)),
    # Dense GQA: spare GPUs become replicas (8B at its full 131072 tokens: TP=2 x 4 holds 256 requests of
    # 4096 tokens a replica, TP=1 x 8 only 110); a short GPU gets a shorter context; two small GPUs give the
    # full context before replicas do.
    ("Llama-3.1-8B-Instruct", "H100:8", {}, (2, 1, 4, 1, 131072)),
    # vLLM at its own 0.92 (sglang's own fraction on an L4, 0.684, does not hold 8B: see the sglang test).
    ("Llama-3.1-8B-Instruct", "L4:1", {"ENGINE": "vllm"}, (1, 1, 1, 1, 28672)),
    ("Llama-3.1-8B-Instruct", "L4:2", {"ENGINE": "vllm"}, (2, 1, 1, 1, 131072)),
    ("Llama-3.1-8B-Instruct", "L4:1", {"ENGINE": "vllm", "MAX_MODEL_LEN": "8192"}, (1, 1, 1, 1, 8192)),
    # sglang's own fraction on two L4s (0.678), less NCCL's buffers on PCIe, leaves 113664 tokens: fewer
    # stages before a longer context.
    ("Llama-3.1-8B-Instruct", "L4:2", {}, (2, 1, 1, 1, 113664)),
    # Online FP8 halves the linear weights: 70B fits two H100s.
    ("Llama-3.1-70B-Instruct", "H100:2", {"QUANTIZATION": "fp8"}, (2, 1, 1, 1, 131072)),
    # Explicit short context with a high MEM_FRACTION is planned (with a warning).
    ("Llama-3.1-70B-Instruct", "A100:4", {"MEM_FRACTION": "0.95", "MAX_MODEL_LEN": "4096"}, (4, 1, 1, 1, 4096)),
    # MoE: EP follows TP in sglang, spans TP x DP in vLLM.
    ("Qwen3-30B-A3B", "H100:2", {}, (2, 1, 1, 2, 40960)),
    ("Qwen3-30B-A3B", "L40S:4", {}, (4, 1, 1, 4, 40960)),
    ("Qwen3-30B-A3B", "L40S:4", {"ENGINE": "vllm"}, (4, 1, 1, 4, 40960)),
    # MLA + MoE: the latent KV is replicated per rank; FP8 block checkpoint, 163 shards.
    ("DeepSeek-V2-Lite-Chat", "A100-80GB:1", {}, (1, 1, 1, 1, 163840)),
    ("DeepSeek-V3", "H200:8", {}, (8, 1, 1, 8, 163840)),
    # Sliding windows: in vLLM Gemma 3's 52 local layers cache only 1024 tokens each; sglang 0.5.23 has no
    # sliding-window pool for Gemma 3 or Mistral (is_hybrid_swa_model), so every layer caches every token.
    ("gemma-3-27b-it", "A100-80GB:1", {"ENGINE": "vllm"}, (1, 1, 1, 1, 131072)),
    ("gemma-3-27b-it", "A100-80GB:1", {}, (1, 1, 1, 1, 31744)),
    ("Mistral-7B-v0.1", "L4:1", {"ENGINE": "vllm"}, (1, 1, 1, 1, 32768)),
    ("Mistral-7B-v0.1", "L4:1", {}, (1, 1, 1, 1, 10240)),
    # AWQ 4-bit on a 16 GB T4.
    ("Qwen2.5-7B-Instruct-AWQ", "T4:1", {}, (1, 1, 1, 1, 32768)),
    # OPTIMIZE=throughput (issue #12, scored by AIConfigurator in bench/layout_bench.py): 70B at 8k on 8 H100s
    # is TP=4 x 2 (TP=2 x 4 holds 6 requests of 4096 tokens a replica); Qwen3-32B at 16k is TP=4 x 2, not 1 x 8.
    (
        "Llama-3.1-70B-Instruct",
        "H100:8",
        {"MEM_FRACTION": "0.95", "MAX_MODEL_LEN": "8192", "ENGINE": "vllm"},
        (4, 1, 2, 1, 8192),
    ),
    ("Qwen3-32B", "H100:8", {"MAX_MODEL_LEN": "16384", "ENGINE": "vllm"}, (4, 1, 2, 1, 16384)),
    # OPTIMIZE=latency: the largest TP that fits.
    ("Llama-3.1-8B-Instruct", "H100:8", {"OPTIMIZE": "latency"}, (8, 1, 1, 1, 131072)),
    # Counts that are no power of two: TP=2 cannot hold 70B (70 GB a GPU), three pipeline stages hold it with
    # its full context; six GPUs are TP=2 x PP=3 rather than TP=4 with two idle and a shorter context.
    ("Llama-3.1-70B-Instruct", "H100:3", {}, (1, 3, 1, 1, 131072)),
    ("Llama-3.1-70B-Instruct", "A100:6", {}, (2, 3, 1, 1, 131072)),
]


@pytest.mark.parametrize(
    ("name", "accelerators", "env", "expected"),
    REFERENCE,
    ids=[f"{r[0]}@{r[1]}{'+' + '+'.join(r[2].values()) if r[2] else ''}" for r in REFERENCE],
)
def test_reference_plans(models, name, accelerators, env, expected):
    plan = plan_for(models, name, accelerators, **env)
    assert (plan.tp, plan.pp, plan.dp, plan.ep, plan.max_model_len) == expected
    memory = plan.memory_per_gpu
    assert memory.weight_bytes + memory.reserve_bytes + memory.kv_cache_bytes <= memory.budget_bytes
    assert memory.kv_tokens >= plan.max_model_len


def test_weight_bytes_come_from_headers(models):
    # Llama-3.1-70B: 70,553,706,496 parameters in bf16.
    assert plan_for(models, "Llama-3.1-70B-Instruct", "A100-80GB:4").weight_bytes == 70_553_706_496 * 2


@pytest.mark.parametrize(
    ("name", "kv_bytes_per_token"),
    [
        ("Llama-3.1-70B-Instruct", 2 * 80 * 8 * 128 * 2),  # GQA: K and V, 8 KV heads
        ("Qwen2.5-7B-Instruct", 2 * 28 * 4 * 128 * 2),
        ("DeepSeek-V3", 61 * (512 + 64) * 2),  # MLA: one latent per layer
    ],
)
def test_kv_bytes_per_token(models, name, kv_bytes_per_token):
    assert plan_for(models, name, "H200:8").kv_bytes_per_token == kv_bytes_per_token


def test_reduced_context_is_said(models):
    plan = plan_for(models, "Llama-3.1-8B-Instruct", "L4:1", ENGINE="vllm")
    assert any("context reduced to 28672" in warning for warning in plan.warnings)
    assert any("only 28672 fit" in reason for reason in plan.reasons)


def test_llama70b_on_a100_40gb_fails_fast_with_fixes(models):
    with pytest.raises(DoesNotFitError) as caught:
        plan_for(models, "Llama-3.1-70B-Instruct", "A100:4")
    hint = caught.value.hint
    for fix in ("ACCELERATORS=A100:8", "QUANTIZATION=fp8", "ACCELERATORS=A100-80GB:4", "MEM_FRACTION=0.9 (now 0.823"):
        assert fix in hint


def test_deepseek_v3_on_one_h100_node_names_two_nodes(models):
    with pytest.raises(DoesNotFitError) as caught:
        plan_for(models, "DeepSeek-V3", "H100:8")
    # ACCELERATORS is one node's GPUs: 16 H100s are two nodes of eight, never ACCELERATORS=H100:16.
    assert "2 nodes of ACCELERATORS=H100:8 (16 GPUs, the fewest H100 GPUs that hold it" in caught.value.hint
    assert "H100:16" not in caught.value.hint
    assert "QUANTIZATION=fp8" not in caught.value.hint  # already FP8


def test_high_mem_fraction_warns(models):
    plan = plan_for(models, "Llama-3.1-70B-Instruct", "A100:4", MEM_FRACTION="0.95", MAX_MODEL_LEN="4096")
    assert any("MEM_FRACTION=0.95" in warning for warning in plan.warnings)


@pytest.mark.parametrize(
    ("engine", "accelerators", "outcome"),
    [
        ("sglang", "T4:1", UnsupportedByEngineError),  # sglang FP8 needs SM 8.0
        ("vllm", "T4:1", "Marlin"),  # vLLM: weight-only FP8 from SM 7.5
        ("sglang", "A100:1", "Marlin"),
        ("vllm", "L4:1", None),  # native FP8
        ("vllm", "V100:1", UnsupportedByEngineError),
    ],
)
def test_fp8_below_native_capability(models, engine, accelerators, outcome):
    def run():
        return plan_for(
            models, "Qwen2.5-7B-Instruct", accelerators, ENGINE=engine, QUANTIZATION="fp8", MAX_MODEL_LEN="4096"
        )

    if outcome is UnsupportedByEngineError:
        with pytest.raises(UnsupportedByEngineError, match="FP8 needs compute capability"):
            run()
        return
    reasons = " ".join(run().reasons)
    assert ("Marlin" in reasons) == (outcome == "Marlin")


@pytest.mark.parametrize(
    ("engine", "quantization", "error", "text"),
    [
        ("sglang", "torchao", UnsupportedByEngineError, "0.5.18"),
        ("vllm", "bitsandbytes", UnsupportedByEngineError, "0.28"),
        ("vllm", "gguf", UnsupportedByEngineError, "0.24"),
        ("sglang", "int4", SettingError, "not a sglang quantization method"),
    ],
)
def test_quantizations_the_engine_no_longer_accepts(models, engine, quantization, error, text):
    with pytest.raises(error) as caught:
        plan_for(models, "Qwen2.5-7B-Instruct", "A100:1", ENGINE=engine, QUANTIZATION=quantization)
    assert text in caught.value.message + caught.value.hint


def test_quantization_must_match_a_quantized_checkpoint(models):
    with pytest.raises(SettingError, match="already awq"):
        plan_for(models, "Qwen2.5-7B-Instruct-AWQ", "A100:1", QUANTIZATION="fp8")
    assert plan_for(models, "Qwen2.5-7B-Instruct-AWQ", "A100:1", QUANTIZATION="awq_marlin").quantization == "awq_marlin"


def test_online_fp8_halves_linear_weights_only(models):
    bf16 = plan_for(models, "Llama-3.1-70B-Instruct", "H100:8").weight_bytes
    fp8 = plan_for(models, "Llama-3.1-70B-Instruct", "H100:8", QUANTIZATION="fp8").weight_bytes
    kept = 2 * 128256 * 8192 * 2 + (80 * 2 + 1) * 8192 * 2  # embed_tokens, lm_head and norms stay bf16
    assert fp8 == (bf16 - kept) // 2 + kept


def test_context_longer_than_the_model_is_refused(models):
    with pytest.raises(SettingError, match="longer than the model's maximum of 32768"):
        plan_for(models, "Qwen2.5-7B-Instruct", "A100:1", MAX_MODEL_LEN="65536")


@pytest.mark.parametrize(
    ("heads", "kv_heads", "gpus", "sizes"),
    [
        (28, 4, 8, [1, 2, 4]),  # Qwen2.5-7B: 28 heads rule out 8
        (64, 8, 8, [1, 2, 4, 8]),
        (32, 8, 16, [1, 2, 4, 8, 16]),  # 16 > 8 KV heads: a multiple, KV replicated
        (40, 8, 8, [1, 2, 4, 8]),
        (14, 2, 8, [1, 2]),
        (12, 12, 8, [1, 2, 4]),  # 12 KV heads: 8 neither divides nor is a multiple
    ],
)
def test_valid_tensor_parallel_sizes(heads, kv_heads, gpus, sizes):
    from entrypoint.model.shape import ModelShape

    shape = ModelShape("x", 1, 1, heads, kv_heads, 1, 1, 1, "bfloat16")
    assert valid_tensor_parallel_sizes(shape, gpus) == sizes


def test_mig_instances_never_get_tensor_parallel(models):
    mig = Hardware(
        name="A100 MIG 3g.40gb", memory_bytes=40000 * 2**20, capability="8.0", count=2, source="nvidia-smi", mig=True
    )
    _, plan = plan_env({"TARGET_MODEL": str(models("Llama-3.1-8B-Instruct")), "MAX_MODEL_LEN": "4096"}, hardware=mig)
    assert (plan.tp, plan.pp, plan.dp) == (1, 1, 2)


def test_mig_instances_never_get_pipeline_stages(models):
    """Three 1g.10gb slices would hold an 8B model only as PP=3, which NCCL cannot run across MIG instances:
    one slice with a shorter context, or a refusal, but never PP."""
    mig = Hardware(
        name="A100 MIG 1g.10gb", memory_bytes=10000 * 2**20, capability="8.0", count=3, source="nvidia-smi", mig=True
    )
    with pytest.raises(DoesNotFitError) as caught:
        plan_env({"TARGET_MODEL": str(models("Llama-3.1-8B-Instruct")), "ENGINE": "vllm"}, hardware=mig)
    assert "A100 MIG 1g.10gb" in caught.value.message
    _, plan = plan_env({"TARGET_MODEL": str(models("Qwen2.5-7B-Instruct-AWQ")), "ENGINE": "vllm"}, hardware=mig)
    assert (plan.tp, plan.pp, plan.dp) == (1, 1, 3)


def test_a_small_model_on_two_nodes_is_planned_with_a_warning_to_use_replicas(models):
    from dataclasses import replace

    two_nodes = replace(from_accelerators(Accelerators(lookup("H100"), 8)), nodes=2)
    _, plan = plan_env({"TARGET_MODEL": str(models("Llama-3.1-8B-Instruct"))}, hardware=two_nodes)
    assert (plan.tp, plan.pp, plan.nodes) == (8, 2, 2)
    assert not any("no tensor-parallel size within one node holds" in reason for reason in plan.reasons)
    assert any("one node would hold the model" in reason for reason in plan.reasons)
    (warning,) = [w for w in plan.warnings if "one node holds this model" in w]
    assert "skypilot/serve.yaml" in warning


def test_layers_bound_the_pipeline_stages(models):
    from entrypoint.layout import candidate_layouts
    from entrypoint.model.shape import ModelShape

    shape = ModelShape("x", 2, 1, 3, 1, 1, 1, 1, "bfloat16")  # 2 layers, 3 heads: TP=1 only
    assert candidate_layouts(shape, from_accelerators(Accelerators(None, 1))) == [(1, 1)]
    assert candidate_layouts(shape, from_accelerators(Accelerators(lookup("H100"), 6))) == [(1, 1), (1, 2)]


def test_dense_model_never_gets_expert_parallel(models):
    assert plan_for(models, "Llama-3.1-70B-Instruct", "H100:8", ENGINE="vllm").ep == 1


def test_idle_gpus_are_reported(models):
    plan = plan_for(models, "Qwen2.5-7B-Instruct", "A100:3", MAX_MODEL_LEN="4096")
    assert plan.dp == 3
    plan = plan_for(models, "Llama-3.1-70B-Instruct", "A100-80GB:6")
    assert (plan.tp, plan.dp) == (4, 1)
    assert any("2 GPU(s) stay idle" in warning for warning in plan.warnings)


def test_cpu_plans_one_process(models):
    hardware = from_accelerators(Accelerators(spec=None, count=1), cpu_memory_bytes=64 * 2**30)
    _, plan = plan_env(
        {
            "TARGET_MODEL": str(models("Qwen2.5-7B-Instruct")),
            "ACCELERATORS": "cpu",
            "ENGINE": "vllm",
            "MAX_MODEL_LEN": "4096",
        },
        hardware=hardware,
    )
    assert (plan.tp, plan.dp, plan.gpu_name) == (1, 1, "cpu")


def test_vllm_expert_parallel_over_replicas_lowers_weights_per_gpu(models):
    sglang = plan_for(models, "Qwen3-30B-A3B", "L40S:4", TENSOR_PARALLEL_SIZE="2")
    vllm = plan_for(models, "Qwen3-30B-A3B", "L40S:4", ENGINE="vllm", TENSOR_PARALLEL_SIZE="2")
    # Same TP=2; vLLM's EP=4 spreads the experts over all four GPUs.
    assert vllm.memory_per_gpu.weight_bytes < sglang.memory_per_gpu.weight_bytes
    assert sglang.memory_per_gpu.weight_bytes == pytest.approx(sglang.weight_bytes / 2, rel=0.001)


def test_a_bigger_gpu_is_of_the_same_vendor(models):
    """70B with its full context on one H100: of the GPUs that hold it, the AMD MI325X is smaller than the
    B300, but an NVIDIA user is offered NVIDIA."""
    with pytest.raises(DoesNotFitError) as caught:
        plan_for(models, "Llama-3.1-70B-Instruct", "H100:1", MAX_MODEL_LEN="131072")
    assert "ACCELERATORS=B300:1" in caught.value.hint
    assert "MI3" not in caught.value.hint


@pytest.mark.parametrize(
    ("accelerators", "env", "dtype"),
    [
        ("T4:4", {}, "float16"),  # Turing: no bfloat16, the bf16 checkpoint is served in float16
        ("V100-32GB:1", {}, "float16"),
        ("A10G:1", {}, "bfloat16"),
        ("T4:4", {"DTYPE": "float16"}, "float16"),
        ("T4:4", {"DTYPE": "float32"}, "float32"),
    ],
)
def test_no_bfloat16_below_ampere(models, accelerators, env, dtype):
    plan = plan_for(models, "Qwen2.5-7B-Instruct", accelerators, MAX_MODEL_LEN="4096", **env)
    assert plan.dtype == dtype
    if dtype == "float16" and not env:
        assert any("has no bfloat16" in reason for reason in plan.reasons)


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_explicit_bfloat16_below_ampere_is_refused(models, engine):
    with pytest.raises(UnsupportedByEngineError, match=r"DTYPE=bfloat16 needs compute capability 8\.0.*T4 has 7\.5"):
        plan_for(models, "Qwen2.5-7B-Instruct", "T4:1", ENGINE=engine, DTYPE="bfloat16", MAX_MODEL_LEN="4096")


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
@pytest.mark.parametrize("method", ["awq", "gptq", "gptq_marlin", "compressed-tensors"])
def test_a_method_that_needs_its_checkpoint_is_refused_on_an_unquantized_one(models, engine, method):
    with pytest.raises(SettingError, match=f"QUANTIZATION={method} needs a checkpoint quantized with {method}"):
        plan_for(models, "Llama-3.1-8B-Instruct", "H100:1", ENGINE=engine, QUANTIZATION=method)
    # The checkpoint's own method still loads (AWQ over an AWQ checkpoint).
    if method == "awq":
        assert plan_for(models, "Qwen2.5-7B-Instruct-AWQ", "H100:1", ENGINE=engine, QUANTIZATION=method).quantization


def test_gemma2_alternates_sliding_and_full_layers(models):
    """gemma-2's config.json has no layer_types: half its 42 layers slide over 4096 tokens. The KV cache is
    counted as vLLM counts it (sequences of the full context), never as a billion tokens."""
    plan = plan_for(models, "gemma-2-9b-it", "L40S:1")
    assert plan.max_model_len == 8192
    assert any("sliding window 4096 on 21 of 42 layers" in reason for reason in plan.reasons)
    concurrency = plan.concurrency
    assert plan.memory_per_gpu.kv_tokens == pytest.approx(concurrency.at_max_model_len * 8192, rel=0.001)
    assert plan.memory_per_gpu.kv_tokens < 10**6


@pytest.mark.parametrize("name", ["Mistral-7B-v0.1", "gemma-3-27b-it", "gemma-2-9b-it", "Llama-3.1-8B-Instruct"])
def test_kv_tokens_are_sequences_of_the_context_never_absurd(models, name):
    plan = plan_for(models, name, "H100:1")
    memory, concurrency = plan.memory_per_gpu, plan.concurrency
    assert plan.max_model_len <= memory.kv_tokens
    assert memory.kv_tokens == pytest.approx(concurrency.at_max_model_len * plan.max_model_len, rel=0.01)
    assert concurrency.at_typical >= concurrency.at_max_model_len
    assert concurrency.typical_request_tokens == min(4096, plan.max_model_len)


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_fp8_kv_cache_doubles_the_tokens(models, engine):
    same = {"ENGINE": engine, "MEM_FRACTION": "0.85"}  # one fraction for both engines, to compare the caches
    auto = plan_for(models, "Llama-3.1-8B-Instruct", "L4:1", MAX_MODEL_LEN="8192", **same)
    fp8 = plan_for(models, "Llama-3.1-8B-Instruct", "L4:1", MAX_MODEL_LEN="8192", KV_CACHE_DTYPE="fp8", **same)
    assert fp8.memory_per_gpu.kv_cache_bytes == auto.memory_per_gpu.kv_cache_bytes
    assert fp8.memory_per_gpu.kv_tokens == pytest.approx(2 * auto.memory_per_gpu.kv_tokens, rel=0.001)
    assert fp8.kv_bytes_per_token * 2 == auto.kv_bytes_per_token
    assert any("kv cache dtype fp8: one byte per value" in reason for reason in fp8.reasons)
    # An automatic context grows with the cache: 8B on one L4 gets more of its 131072 tokens.
    longer = plan_for(models, "Llama-3.1-8B-Instruct", "L4:1", KV_CACHE_DTYPE="fp8", **same)
    assert longer.max_model_len > plan_for(models, "Llama-3.1-8B-Instruct", "L4:1", **same).max_model_len


def test_a_context_with_room_for_one_sequence_names_one_with_room_for_four(models):
    plan = plan_for(models, "Llama-3.1-8B-Instruct", "L4:1", ENGINE="vllm")
    assert plan.max_model_len == 28672 and plan.concurrency.at_max_model_len < 2
    (warning,) = [w for w in plan.warnings if "sequence(s) of 28672 tokens, so only 1 request(s)" in w]
    suggested = int(warning.split("MAX_MODEL_LEN=")[1].split()[0])
    assert suggested % 1024 == 0 and suggested >= 4096
    shorter = plan_for(models, "Llama-3.1-8B-Instruct", "L4:1", ENGINE="vllm", MAX_MODEL_LEN=str(suggested))
    assert shorter.concurrency.at_max_model_len >= 4
    longer = plan_for(models, "Llama-3.1-8B-Instruct", "L4:1", ENGINE="vllm", MAX_MODEL_LEN=str(suggested + 1024))
    assert longer.concurrency.at_max_model_len < 4
    # An explicit context is the user's choice: no such warning.
    assert not any("run at once" in w for w in shorter.warnings + longer.warnings)


@pytest.mark.parametrize(
    ("name", "accelerators", "env", "expected"),
    [
        # (tp, pp, dp, ep): a pin fixes one size, the planner plans the rest.
        ("Llama-3.1-8B-Instruct", "H100:8", {"TENSOR_PARALLEL_SIZE": "4"}, (4, 1, 2, 1)),
        ("Llama-3.1-70B-Instruct", "H100:8", {"PIPELINE_PARALLEL_SIZE": "2"}, (4, 2, 1, 1)),
        ("Llama-3.1-8B-Instruct", "H100:8", {"DATA_PARALLEL_SIZE": "2", "TENSOR_PARALLEL_SIZE": "1"}, (1, 1, 2, 1)),
        ("Llama-3.1-70B-Instruct", "H100:8", {"DATA_PARALLEL_SIZE": "2"}, (4, 1, 2, 1)),  # TP=2 cannot hold 70B
        ("Qwen3-30B-A3B", "L40S:4", {"EXPERT_PARALLEL": "false"}, (4, 1, 1, 1)),
        (
            "Qwen3-30B-A3B",
            "H100:2",
            {"EXPERT_PARALLEL": "true", "ENGINE": "vllm", "TENSOR_PARALLEL_SIZE": "1"},
            (1, 1, 2, 2),
        ),
        ("Qwen3-30B-A3B", "H100:4", {"TENSOR_PARALLEL_SIZE": "4", "EXPERT_PARALLEL": "true"}, (4, 1, 1, 4)),
    ],
)
def test_pinned_layouts(models, name, accelerators, env, expected):
    plan = plan_for(models, name, accelerators, **env)
    assert (plan.tp, plan.pp, plan.dp, plan.ep) == expected
    if "TENSOR_PARALLEL_SIZE" in env:
        assert f"tp={expected[0]}: set by TENSOR_PARALLEL_SIZE." in plan.reasons
    if "PIPELINE_PARALLEL_SIZE" in env:
        assert any(reason.startswith("pp=2: set by PIPELINE_PARALLEL_SIZE") for reason in plan.reasons)


def test_a_pinned_data_parallel_size_says_which_gpus_idle(models):
    plan = plan_for(models, "Llama-3.1-8B-Instruct", "H100:8", DATA_PARALLEL_SIZE="2", TENSOR_PARALLEL_SIZE="1")
    assert "6 GPU(s) stay idle: DATA_PARALLEL_SIZE=2." in plan.warnings


def test_a_pin_that_does_not_fit_says_so_and_offers_the_planners_layout(models):
    with pytest.raises(DoesNotFitError) as caught:
        plan_for(models, "Llama-3.1-70B-Instruct", "H100:4", TENSOR_PARALLEL_SIZE="1", PIPELINE_PARALLEL_SIZE="1")
    assert "with TENSOR_PARALLEL_SIZE=1, PIPELINE_PARALLEL_SIZE=1;" in caught.value.message
    assert caught.value.hint.startswith(
        "try unset TENSOR_PARALLEL_SIZE and PIPELINE_PARALLEL_SIZE (the planner chooses the layout)"
    )
    # TP=1 alone still plans: the planner adds pipeline stages.
    plan = plan_for(models, "Llama-3.1-70B-Instruct", "H100:4", TENSOR_PARALLEL_SIZE="1")
    assert (plan.tp, plan.pp) == (1, 3)


def test_expert_parallel_true_needs_a_group_that_splits_the_experts(models):
    with pytest.raises(SettingError) as caught:
        plan_for(models, "Qwen3-30B-A3B", "H100:1", EXPERT_PARALLEL="true")
    assert "would spread the 128 experts over 1 GPU(s)" in caught.value.message


def test_sglang_gives_gemma_no_sliding_window_pool(models):
    plan = plan_for(models, "gemma-3-27b-it", "A100-80GB:1")
    assert any("sglang gives Gemma3ForConditionalGeneration no sliding-window pool" in r for r in plan.reasons)
    vllm = plan_for(models, "gemma-3-27b-it", "A100-80GB:1", ENGINE="vllm")
    assert not any("no sliding-window pool" in r for r in vllm.reasons)


def test_sglangs_swa_pool_costs_each_token_a_share_of_the_sliding_layers():
    """gpt-oss style: with sglang's SWA pool (ratio 0.8) a token costs the full layers plus 0.8 of the sliding
    ones, whatever the length (HybridSWAPoolConfigurator's cell size)."""
    from entrypoint.model import kv
    from entrypoint.model.shape import ModelShape

    shape = ModelShape(
        "GptOssForCausalLM", 24, 2880, 64, 8, 64, 201088, 131072, "bfloat16", sliding_window=128, sliding_layers=12
    )
    per_layer = kv.bytes_per_layer_token(shape, 1, 2)
    assert kv.sequence_bytes(shape, 1000, 1, 1, 2, swa_ratio=0.8) == pytest.approx(per_layer * (12 + 0.8 * 12) * 1000)
    assert kv.longest_sequence(shape, per_layer * 21_600, 1, 1, 2, swa_ratio=0.8) == pytest.approx(1000, abs=1)
