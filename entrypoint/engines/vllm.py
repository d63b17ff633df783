"""vLLM: accepted values and sizing rules at the pinned version (0.32)."""

from __future__ import annotations

from .base import Engine

# vLLM validates --quantization when it builds ModelConfig; this is the list
# of model_executor/layers/quantization/__init__.py (same in 0.32 and 0.33)
# plus the online shorthands.
QUANTIZATION_METHODS = frozenset({
    "awq", "auto_awq", "fp8", "fbgemm_fp8", "fp_quant", "modelopt", "modelopt_fp4", "modelopt_mxfp8",
    "modelopt_mixed", "auto_gptq", "gptq", "gptq_marlin", "awq_marlin", "humming", "compressed-tensors",
    "experts_int8", "quark", "moe_wna16", "torchao", "inc", "mxfp4", "gpt_oss_mxfp4", "deepseek_v4_fp8", "online",
    "fp8_per_tensor", "fp8_per_block", "fp8_per_channel", "int8_per_channel_weight_only", "nvfp4_per_token",
    "mxfp8",
})

REMOVED_QUANTIZATION = {
    "bitsandbytes": "vLLM removed bitsandbytes in 0.28; use QUANTIZATION=fp8 (online), an awq/gptq checkpoint, "
                    "or ENGINE=sglang",
    "gguf": "vLLM removed GGUF in 0.24; use the safetensors checkpoint",
    "marlin": "vLLM removed it in 0.10.2; use gptq_marlin or awq_marlin (or leave QUANTIZATION unset)",
    "aqlm": "vLLM removed AQLM in 0.10.1; use an awq or gptq checkpoint",
}

ENGINE = Engine(
    name="vllm",
    quantization_methods=QUANTIZATION_METHODS,
    removed_quantization=REMOVED_QUANTIZATION,
    # Fp8Config min capability 75: Turing/Ampere get Marlin weight-only FP8.
    fp8_min_capability=(7, 5),
    # --enable-expert-parallel spans the whole TP x DP world.
    expert_parallel_size=lambda tp, dp: tp * dp,
    supports_cpu=True,
    compatible_quantization={
        "awq": frozenset({"awq", "awq_marlin", "auto_awq", "moe_wna16"}),
        "gptq": frozenset({"gptq", "gptq_marlin", "auto_gptq", "moe_wna16"}),
        "fp8": frozenset({"fp8"}),
    },
)
