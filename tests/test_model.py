"""Reading checkpoints: config.json variants and safetensors headers from local folders."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from entrypoint.errors import CorruptCheckpointError, ModelNotFoundError, NoSafetensorsError
from entrypoint.model import safetensors
from entrypoint.model.shape import from_config
from entrypoint.model.source import read_local_header, read_model
from entrypoint.model.weights import Tally
from tests.support.modelgen import architecture_tensors, header_bytes, load_fixture, quantize, write_header_only
from tests.support.modelgen import build as modelgen_build

BASE = {
    "num_attention_heads": 32,
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "vocab_size": 32000,
    "max_position_embeddings": 8192,
}


@pytest.mark.parametrize(
    ("extra", "field", "value"),
    [
        ({}, "kv_heads", 32),  # MHA: KV heads default to attention heads
        ({"num_key_value_heads": 8}, "kv_heads", 8),
        ({"multi_query": True}, "kv_heads", 1),
        ({}, "head_dim", 128),
        ({"head_dim": 256}, "head_dim", 256),  # explicit head_dim wins (Gemma, Qwen3)
        ({"num_local_experts": 8}, "experts", 8),  # Mixtral
        ({"num_experts": 128}, "experts", 128),  # Qwen-MoE
        ({"n_routed_experts": 256, "n_shared_experts": 1}, "experts", 256),  # DeepSeek
        ({"n_routed_experts": 256, "n_shared_experts": 1}, "shared_experts", 1),
        ({"shared_expert_intermediate_size": 5632}, "shared_experts", 1),  # Qwen2-MoE
        ({"kv_lora_rank": 512, "qk_rope_head_dim": 64}, "is_mla", True),
        ({"sliding_window": 4096}, "sliding_layers", 32),  # Mistral v0.1: every layer
        ({"sliding_window": 4096, "use_sliding_window": False}, "sliding_layers", 0),  # Qwen2 ships it off
        ({"sliding_window": 1024, "sliding_window_pattern": 6}, "sliding_layers", 27),  # Gemma 3: 1 in 6 global
        # Gemma 2's config.json has no layer_types: transformers alternates sliding and full layers.
        ({"sliding_window": 4096, "model_type": "gemma2"}, "sliding_layers", 16),
        ({"sliding_window": 1024, "model_type": "gemma3_text"}, "sliding_layers", 27),
        ({"sliding_window": 128, "model_type": "gpt_oss"}, "sliding_layers", 16),
        ({"sliding_window": 128, "layer_types": ["sliding_attention", "full_attention"] * 16}, "sliding_layers", 16),
        (
            {"rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}},
            "max_position",
            131072,
        ),
        ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "max_position", 8192),
        ({"torch_dtype": "float16"}, "dtype", "float16"),
        ({"dtype": "bfloat16"}, "dtype", "bfloat16"),  # transformers 5 spelling
    ],
)
def test_config_fields(extra, field, value):
    assert getattr(from_config({**BASE, **extra}), field) == value


def test_text_config_of_multimodal_wrappers():
    shape = from_config(
        {
            "architectures": ["Gemma3ForConditionalGeneration"],
            "vision_config": {"hidden_size": 1152},
            "text_config": {**BASE, "num_key_value_heads": 16},
        }
    )
    assert (shape.architecture, shape.layers, shape.kv_heads) == ("Gemma3ForConditionalGeneration", 32, 16)


@pytest.mark.parametrize(
    ("config", "method", "details"),
    [
        ({"quant_method": "fp8", "weight_block_size": [128, 128]}, "fp8", "block 128x128"),
        ({"quant_method": "awq", "bits": 4, "group_size": 128}, "awq", "4-bit, group 128"),
        ({"quant_method": "gptq", "bits": 4, "group_size": 128}, "gptq", "4-bit, group 128"),
        ({"quant_method": "compressed-tensors", "format": "float-quantized"}, "compressed-tensors", "float-quantized"),
        ({"quant_method": "mxfp4"}, "mxfp4", ""),
    ],
)
def test_quantization_config(config, method, details):
    quantization = from_config({**BASE, "quantization_config": config}).quantization
    assert (quantization.method, quantization.details) == (method, details)


def test_config_without_attention_is_refused():
    with pytest.raises(CorruptCheckpointError, match="num_attention_heads"):
        from_config({"model_type": "bert-ish"})


def test_deepseek_mtp_layer_is_not_counted(models):
    model = read_model(str(models("DeepSeek-V2-Lite-Chat")))
    assert model.weights.skipped_mtp_tensors == 0
    v3 = read_model(str(models("DeepSeek-V3")))
    assert v3.shards == 163 and v3.weights.skipped_mtp_tensors > 0


def test_checkpoint_bytes_equal_the_files(models):
    folder = models("Qwen3-14B-FP8")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert read_model(str(folder)).weights.checkpoint_bytes == index["metadata"]["total_size"]


def _folder(tmp_path, files: dict[str, bytes | None], config: dict | None = BASE):
    folder = tmp_path / "m"
    folder.mkdir()
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    for name, data in files.items():
        if data is None:
            write_header_only(folder / name, {"w": ((4, 4), "BF16")})
        else:
            (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize(
    ("files", "config", "error", "text"),
    [
        ({"model.safetensors": None}, None, ModelNotFoundError, "has no config.json"),
        ({"pytorch_model.bin": b"x"}, BASE, NoSafetensorsError, "found pytorch_model.bin"),
        ({"model.Q4_K_M.gguf": b"x"}, BASE, NoSafetensorsError, "GGUF"),
        ({"model.safetensors": b"\x05\x00"}, BASE, CorruptCheckpointError, "shorter than 8 bytes"),
        ({"model.safetensors": struct.pack("<Q", 10**12)}, BASE, CorruptCheckpointError, "header length field"),
        ({"model.safetensors": struct.pack("<Q", 8) + b"not json"}, BASE, CorruptCheckpointError, "not JSON"),
        ({"model.safetensors": struct.pack("<Q", 100) + b"{}"}, BASE, CorruptCheckpointError, "claims 100 bytes"),
    ],
)
def test_local_checkpoint_errors(tmp_path, files, config, error, text):
    folder = _folder(tmp_path, files, config)
    with pytest.raises(error) as caught:
        read_model(str(folder))
    assert text in caught.value.message + caught.value.hint


def test_truncated_download_is_caught(tmp_path):
    folder = _folder(tmp_path, {"model.safetensors": None})
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(CorruptCheckpointError, match="truncated or unfinished download"):
        read_local_header(str(path), lambda *tensor: None)


def test_index_decides_which_files_count(tmp_path):
    # Mistral repos ship model-*.safetensors and a consolidated.safetensors with the same weights.
    folder = _folder(tmp_path, {"model-00001-of-00001.safetensors": None, "consolidated.safetensors": None})
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"w": "model-00001-of-00001.safetensors"}})
    )
    assert read_model(str(folder)).shards == 1


def test_index_naming_a_missing_shard(tmp_path):
    folder = _folder(tmp_path, {"model-00001-of-00002.safetensors": None})
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})
    )
    with pytest.raises(CorruptCheckpointError, match="missing file"):
        read_model(str(folder))


def test_missing_folder():
    with pytest.raises(ModelNotFoundError, match="is not a folder"):
        read_model("/models/does-not-exist")


def test_fixture_parameter_counts_match_published_sizes():
    from tests.support.modelgen import FIXTURES, parameter_count

    for path in FIXTURES.glob("*.json"):
        published = load_fixture(path.stem)["published_parameters"]
        assert abs(parameter_count(path.stem) / published - 1) < 0.005, path.stem


@pytest.mark.parametrize("name", ["DeepSeek-V2-Lite-Chat", "Qwen3-14B-FP8", "Qwen2.5-7B-Instruct-AWQ"])
def test_the_raw_byte_number_check_and_the_per_tensor_checks_read_a_header_alike(name):
    # Writers emit compact JSON, which parse_header checks for whole numbers in one scan; the same header
    # re-spelled with spaces takes the per-tensor checks. Both must see the same tensors.
    fixture = load_fixture(name)
    tensors = quantize(architecture_tensors(fixture["config"]), fixture["checkpoint"])
    compact, _ = header_bytes(tensors)
    spaced = json.dumps(json.loads(compact)).encode()
    assert safetensors._plainly_whole_numbers(compact, len(tensors))
    assert not safetensors._plainly_whole_numbers(spaced, len(tensors))
    shape = from_config(fixture["config"])
    seen = []
    for raw in (compact, spaced):
        tally = Tally(shape)
        data_end = safetensors.parse_header(raw, "model.safetensors", tally.add)
        seen.append((data_end, tally.summary()))
    assert seen[0] == seen[1]
    assert seen[0][1].checkpoint_bytes == seen[0][0]


def test_headers_read_by_forked_workers_sum_and_fail_as_one_by_one(tmp_path, monkeypatch):
    # 40 shards: two workers of 20 where the machine has two CPUs (SHARDS_PER_WORKER = 16).
    from entrypoint.model import source

    monkeypatch.setattr(source.os, "sched_getaffinity", lambda _pid: {0, 1})
    folder = modelgen_build("Qwen2.5-7B-Instruct", tmp_path, shards=40)
    files = source._local_shards(str(folder), "m")
    shape = from_config(json.loads((folder / "config.json").read_text()))
    assert source._summarize_headers(files, shape) == source._summarize(files, shape)
    for index in (30, 5):  # the second worker's run, then the first's: the earliest file is named
        path = folder / Path(files[index]).name
        path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(CorruptCheckpointError) as caught:
        source._summarize_headers(files, shape)
    assert Path(files[5]).name in caught.value.message
