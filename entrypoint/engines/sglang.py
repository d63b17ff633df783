"""SGLang: accepted values and sizing rules at the pinned version (0.5.23)."""

from __future__ import annotations

from .base import Engine

# argparse choices of --quantization in sglang 0.5.23 (server_args choices.py).
QUANTIZATION_METHODS = frozenset({
    "awq", "fp8", "mxfp8", "gptq", "gptq_marlin", "awq_marlin", "bitsandbytes", "gguf", "modelopt",
    "modelopt_fp8", "modelopt_fp4", "nvfp4_online", "modelopt_mixed", "petit_nvfp4", "w8a8_int8", "w8a8_fp8",
    "moe_wna16", "w4afp8", "mxfp4", "auto-round", "auto-round-int8", "compressed-tensors", "modelslim",
    "mxfp_w4a8", "quark", "quark_int4fp8_moe", "quark_mxfp4", "mlx_q4", "mlx_q8", "unquant", "humming",
})

REMOVED_QUANTIZATION = {
    "torchao": "sglang removed its torchao integration in 0.5.18; use fp8 (online) or an awq/gptq checkpoint, "
               "or ENGINE=vllm",
    "int4wo-128": "torchao options were removed from sglang in 0.5.18; use an awq or gptq checkpoint",
    "int8wo": "torchao options were removed from sglang in 0.5.18; use w8a8_int8 or fp8",
    "int8dq": "torchao options were removed from sglang in 0.5.18; use w8a8_int8",
    "fp8wo": "torchao options were removed from sglang in 0.5.18; use fp8",
    "marlin": "use gptq_marlin or awq_marlin (or leave QUANTIZATION unset for the checkpoint's own)",
    "int8": "use w8a8_int8",
}

ENGINE = Engine(
    name="sglang",
    quantization_methods=QUANTIZATION_METHODS,
    removed_quantization=REMOVED_QUANTIZATION,
    # Fp8Config.get_min_capability() is 80; SM 8.0-8.8 auto-enables Marlin FP8.
    fp8_min_capability=(8, 0),
    # --ep-size is carved out of the TP group (moe_tp = tp // ep): ep = tp.
    expert_parallel_size=lambda tp, dp: tp,
    compatible_quantization={
        "awq": frozenset({"awq", "awq_marlin", "moe_wna16"}),
        "gptq": frozenset({"gptq", "gptq_marlin", "moe_wna16"}),
        "fp8": frozenset({"fp8", "w8a8_fp8"}),
    },
)
