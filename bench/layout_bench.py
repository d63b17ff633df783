"""Benchmark: the planner's layout (OPTIMIZE=throughput) scored by NVIDIA AIConfigurator.

    .venv/bin/python -m bench.layout_bench    (from the repository root; not in CI)

For each case of bench/data/aiconfigurator-0.12.0.json (20 cases: model, GPUs, input and output lengths),
plans the model with ENGINE=vllm, MAX_MODEL_LEN and TYPICAL_REQUEST_TOKENS set to input + output, and looks
up the tokens per second per GPU AIConfigurator 0.12.0 predicts, from its measured vLLM 0.24.0 data, for
the planner's layout (same TP and PP, experts tensor-parallel), against its best aggregated layout of every
kind (attention-DP layouts included, which the planner does not make). AIConfigurator was run offline on
the tests' header-only folders (`aiconfigurator cli default --model-path DIR --total-gpus N --system S
--backend vllm --isl I --osl O --ttft 2000 --tpot 50 --top-n 20`, the command stored with each case); the
recorded figures are used because the tool is large and slow (7-103 s a case). Ratios are reported, never
asserted. Goal: at least 90% on every case.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from entrypoint.errors import EntrypointError
from tests.support import modelgen
from tests.support.planning import plan_env

DATA = Path(__file__).parent / "data" / "aiconfigurator-0.12.0.json"
SYSTEMS = {"h100_sxm": "H100", "h200_sxm": "H200", "a100_sxm": "A100-80GB", "l40s": "L40S"}
# AIConfigurator's FP8 checkpoint of 405B, planned as the BF16 one with online FP8 (the same bytes).
MODELS = {"Llama-3.1-405B-Instruct-FP8": ("Llama-3.1-405B-Instruct", {"QUANTIZATION": "fp8"})}


def aic_score(case: dict, tp: int, pp: int) -> float | None:
    """AIConfigurator's tokens/s/GPU for a pure TP x PP layout (no attention DP), if it scored one."""
    rows = [row for row in case["layouts"] if row["attention_dp"] == 1 and row["moe_ep"] == 1]
    rows += [{**row, "attention_dp": 1} for row in case.get("layouts_with_pp") or []]
    found = [row["tokens_per_s_per_gpu"] for row in rows if (row["tp"], row["pp"]) == (tp, pp)]
    return max(found) if found else None


def main() -> None:
    cases = json.loads(DATA.read_text())
    with tempfile.TemporaryDirectory() as root:
        print(f"{'case':<28} {'planned':<16} {'AIC':>8} {'best':<22} {'AIC':>8} {'ratio':>6}")
        ratios = []
        for case in cases:
            fixture, extra = MODELS.get(case["model"], (case["model"], {}))
            folder = modelgen.build(fixture, Path(root))
            tokens = case["isl"] + case["osl"]
            env = {
                "TARGET_MODEL": str(folder),
                "ACCELERATORS": f"{SYSTEMS[case['system']]}:{case['total_gpus']}",
                "ENGINE": "vllm",
                "MAX_MODEL_LEN": str(math.ceil(tokens / 1024) * 1024),
                "TYPICAL_REQUEST_TOKENS": str(tokens),
                **extra,
            }
            best = max(
                case["layouts"] + (case.get("layouts_with_pp") or []), key=lambda row: row["tokens_per_s_per_gpu"]
            )
            label = f"tp{best['tp']} pp{best['pp']}" + (
                f" adp{best['attention_dp']}" if best.get("attention_dp", 1) > 1 else ""
            )
            try:
                plan = plan_env(env)[1]
            except EntrypointError as exc:
                print(f"{case['case']:<28} refused: {exc.message}")
                continue
            mine = aic_score(case, plan.tp, plan.pp)
            ratio = mine / best["tokens_per_s_per_gpu"] if mine else 0.0
            ratios.append(ratio)
            planned = f"tp{plan.tp} pp{plan.pp} x{plan.dp}"
            print(
                f"{case['case']:<28} {planned:<16} {mine or 0:>8.0f} {label:<22} "
                f"{best['tokens_per_s_per_gpu']:>8.0f} {ratio:>6.0%}"
            )
        print(f"\n{sum(r >= 0.9 for r in ratios)} of {len(ratios)} cases at 90% or more; lowest {min(ratios):.0%}")


if __name__ == "__main__":
    main()
