"""The README's generated tables match the code."""

from entrypoint import docs


def test_readme_tables_are_current():
    current = docs.README.read_text()
    assert docs.render(current) == current, "README.md is stale: run `python -m entrypoint.docs`"


def test_every_setting_is_in_the_readme():
    current = docs.README.read_text()
    for setting in docs.SETTINGS:
        assert f"| `{setting.name}` |" in current


# (fixture model, ACCELERATORS, other settings): the README's reference plans.
REFERENCE_PLANS = [
    ("Qwen2.5-7B-Instruct", "A100:1", {}),
    ("Mixtral-8x7B-Instruct-v0.1", "A100-80GB:2", {}),
    ("Qwen3-14B-FP8", "H100:1", {}),
    ("Llama-3.1-8B-Instruct", "L4:1", {}),
    ("Llama-3.1-8B-Instruct", "H100:8", {}),
    ("Llama-3.1-70B-Instruct", "A100-80GB:4", {}),
    ("Llama-3.1-70B-Instruct", "A100:4", {}),
    ("Llama-3.1-70B-Instruct", "H100:2", {"QUANTIZATION": "fp8"}),
    ("Llama-3.1-70B-Instruct", "H100:3", {}),
    ("Qwen3-30B-A3B", "L40S:4", {}),
    ("gemma-3-27b-it", "A100-80GB:1", {}),
    ("DeepSeek-V3", "H200:8", {}),
]
MARKERS = ("<!-- reference-plans:begin -->\n", "<!-- reference-plans:end -->")


def reference_cell(env: dict[str, str]) -> str:
    from entrypoint.errors import EntrypointError
    from tests.support.planning import plan_env

    try:
        _, plan = plan_env(env)
    except EntrypointError as exc:
        return f"refused (exit {exc.exit_code})"
    layout = f"TP={plan.tp} PP={plan.pp} DP={plan.dp} EP={plan.ep}"
    concurrency = plan.concurrency
    return (
        f"{layout}, {plan.max_model_len} tokens, KV {plan.memory_per_gpu.kv_tokens:,}, "
        f"{concurrency.at_max_model_len:g} / {concurrency.at_typical:g}"
    )


def reference_table(models) -> str:
    rows = ["| Model | ACCELERATORS | sglang | vLLM |", "|---|---|---|---|"]
    for name, accelerators, settings in REFERENCE_PLANS:
        env = {"TARGET_MODEL": str(models(name)), "ACCELERATORS": accelerators, **settings}
        shown = f"`{accelerators}`" + "".join(f" + `{key}={value}`" for key, value in settings.items())
        cells = [reference_cell({**env, "ENGINE": engine}) for engine in ("sglang", "vllm")]
        rows.append(f"| {name} | {shown} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows)


def test_the_readmes_reference_plans_are_what_the_planner_says(models):
    import os

    current = docs.README.read_text()
    begin, end = (current.index(marker) for marker in MARKERS)
    fresh = current[: begin + len(MARKERS[0])] + reference_table(models) + "\n" + current[end:]
    if os.environ.get("UPDATE_README"):
        docs.README.write_text(fresh)
        return
    assert fresh == current, "the reference plans are stale: UPDATE_README=1 bash scripts/test.sh tests/test_docs.py"
