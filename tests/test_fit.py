"""`python -m entrypoint fit`: every catalogue shape that holds the model at its full context, cheapest first,
and each row is the plan `plan` gives for that ACCELERATORS."""

from __future__ import annotations

import json

import pytest

from tests.support import modelgen
from tests.support.hostile import refused, run


def fit_json(env: dict[str, str]) -> dict:
    code, out, err = run(["fit", "--json"], {"PATH": "/usr/bin:/bin", **env})
    assert code == 0, err
    return json.loads(out)


def test_an_8b_model_fits_two_l4_first_and_never_one(models):
    shapes = fit_json({"TARGET_MODEL": str(models("Llama-3.1-8B-Instruct")), "ENGINE": "vllm"})["shapes"]
    names = [shape["accelerators"] for shape in shapes]
    assert names[0] == "L4:2"  # one L4 holds only 29696 of its 131072 tokens
    assert "L4:1" not in names
    assert all(shape["max_model_len"] == 131072 for shape in shapes)
    priced = [shape["usd_per_hour"] for shape in shapes if shape["usd_per_hour"] is not None]
    assert priced == sorted(priced)
    assert not any(name.startswith("MI3") for name in names)  # the CUDA images
    assert all(shape["nodes"] == 1 for shape in shapes)  # one node of every GPU that holds it is enough


def test_an_encoder_fits_with_no_kv_cache_on_vllm_only(tmp_path):
    """A BERT-base encoder (ADR 0025): on vLLM every shape says no KV cache, in the table as in the JSON; on
    sglang the shapes carry its token pool."""
    config = {"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 768, "intermediate_size": 3072}
    config |= {"num_hidden_layers": 12, "num_attention_heads": 12, "vocab_size": 30522, "max_position_embeddings": 512}
    (tmp_path / "config.json").write_text(json.dumps(config))
    modelgen.write_shards(tmp_path, modelgen.architecture_tensors(config), 1)
    vllm = fit_json({"TARGET_MODEL": str(tmp_path), "ENGINE": "vllm"})["shapes"]
    assert vllm and all(not shape["kv_cache"] and shape["kv_tokens"] == 0 for shape in vllm)
    assert all(shape["concurrency_per_replica"] is None for shape in vllm)
    sglang = fit_json({"TARGET_MODEL": str(tmp_path), "ENGINE": "sglang"})["shapes"]
    assert sglang and all(shape["kv_cache"] and shape["kv_tokens"] > 0 for shape in sglang)
    code, table, err = run(["fit"], {"PATH": "/usr/bin:/bin", "TARGET_MODEL": str(tmp_path), "ENGINE": "vllm"})
    assert code == 0, err
    assert "L4:1                 1   1   1   1   1        none" in table
    assert "none: vllm keeps no KV cache for this model." in table


def test_a_shorter_context_fits_more(models):
    env = {"TARGET_MODEL": str(models("Llama-3.1-8B-Instruct")), "MAX_MODEL_LEN": "8192", "ENGINE": "vllm"}
    shapes = fit_json(env)["shapes"]
    assert shapes[0]["accelerators"] == "L4:1" and shapes[0]["max_model_len"] == 8192


def test_two_nodes_only_where_one_node_of_that_gpu_does_not_hold_it(models):
    shapes = fit_json({"TARGET_MODEL": str(models("Llama-3.1-405B-Instruct"))})["shapes"]
    two_nodes = {shape["accelerators"] for shape in shapes if shape["nodes"] == 2}
    one_node = {shape["accelerators"].split(":")[0] for shape in shapes if shape["nodes"] == 1}
    assert "H100:8" in two_nodes and "H100" not in one_node
    assert not {name.split(":")[0] for name in two_nodes} & one_node


@pytest.mark.parametrize("name", ["Llama-3.1-70B-Instruct", "Qwen3-30B-A3B"])
def test_every_row_is_what_plan_gives(models, name):
    base = {"TARGET_MODEL": str(models(name)), "ENGINE": "vllm"}
    for shape in fit_json(base)["shapes"]:
        env = {**base, "ACCELERATORS": shape["accelerators"]}
        if shape["nodes"] > 1:
            env.update(SKYPILOT_NUM_NODES=str(shape["nodes"]), SKYPILOT_NODE_IPS="10.0.0.1\n10.0.0.2")
        code, out, err = run(["plan", "--json"], {"PATH": "/usr/bin:/bin", **env})
        assert code == 0, err
        plan = json.loads(out)
        assert (plan["tp"], plan["pp"], plan["dp"], plan["ep"]) == (shape["tp"], shape["pp"], shape["dp"], shape["ep"])
        assert plan["memory_per_gpu"]["kv_tokens"] == shape["kv_tokens"]


def test_the_table_for_people(models):
    env = {"PATH": "/usr/bin:/bin", "TARGET_MODEL": str(models("Llama-3.1-8B-Instruct")), "ENGINE": "vllm"}
    code, out, _ = run(["fit"], env)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].endswith("at 131072 tokens with vllm, cheapest first")
    assert lines[3].split()[:6] == ["L4:2", "1", "2", "1", "1", "1"]


def test_nothing_fits_is_exit_40(models):
    env = {"TARGET_MODEL": str(models("Llama-3.1-70B-Instruct")), "MEM_FRACTION": "0.01"}
    refused(env, 40, "no catalogue shape", ["fit"], text="MAX_MODEL_LEN")


def test_fit_refuses_unknown_arguments(models):
    refused({"TARGET_MODEL": str(models("Llama-3.1-8B-Instruct"))}, 2, "--jsn", ["fit", "--jsn"])


def test_sglangs_own_fraction_needs_more_l4s(models):
    """sglang keeps 7 GiB of an L4 for activations and graphs (its own 0.684): two L4s hold 117760 tokens, so
    the first shape with the full context is four."""
    shapes = fit_json({"TARGET_MODEL": str(models("Llama-3.1-8B-Instruct"))})["shapes"]
    assert shapes[0]["accelerators"] == "L4:4"
