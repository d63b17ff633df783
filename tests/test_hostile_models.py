"""Model folders as they arrive broken or hostile: every one ends as a documented exit code and one line that
names the file, never a traceback, a hang, or a plan of nonsense (an 8B model planned as 0 GiB)."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import pytest

from tests.support.hostile import refused

BASE = "Qwen2.5-7B-Instruct"  # one header-only shard per file, 4 shards


def raw_header(path: Path, header: object) -> None:
    """A safetensors file with exactly this header and no data."""
    raw = json.dumps(header).encode() if not isinstance(header, bytes) else header
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)


def _compact(header: object) -> bytes:
    return json.dumps(header, separators=(",", ":")).encode()


def config_edit(**changes: object):
    def edit(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        for key, value in changes.items():
            if value is _DELETE:
                config.pop(key, None)
            else:
                config[key] = value
        (folder / "config.json").write_text(json.dumps(config))

    return edit


_DELETE = object()


def only_shard(header: object):
    def edit(folder: Path) -> None:
        for path in folder.glob("*.safetensors*"):
            path.unlink()
        raw_header(folder / "model.safetensors", header)

    return edit


def index_edit(weight_map: object, raw: bytes | None = None):
    def edit(folder: Path) -> None:
        index = folder / "model.safetensors.index.json"
        index.write_bytes(raw if raw is not None else json.dumps({"weight_map": weight_map}).encode())

    return edit


def replace_with(name: str, kind: str):
    def edit(folder: Path) -> None:
        (folder / name).unlink()
        added(name, kind)(folder)

    return edit


def added(name: str, kind: str):
    """A file of the folder made a folder, a FIFO (whose open blocks), /dev/zero (which never ends) or a
    dangling link."""

    def edit(folder: Path) -> None:
        path = folder / name
        if kind == "folder":
            path.mkdir()
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "zero":
            path.symlink_to("/dev/zero")
        else:
            path.symlink_to(folder / "blobs" / "missing")

    return edit


def tokenizer_edit(**changes: object):
    def edit(folder: Path) -> None:
        path = folder / "tokenizer_config.json"
        config = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**config, **changes}))

    return edit


def first_shard(folder: Path) -> str:
    return sorted(p.name for p in folder.glob("model-*.safetensors"))[0]


def shard_replaced(kind: str):
    return lambda folder: replace_with(first_shard(folder), kind)(folder)


def no_index_dangling_link(folder: Path) -> None:
    (folder / "model.safetensors.index.json").unlink()
    shard_replaced("link")(folder)


DEEP = b"[" * 100_000 + b"]" * 100_000
CASES = {
    # config.json
    "config is a folder": (replace_with("config.json", "folder"), 33, "config.json is not a regular file"),
    "config is a fifo": (replace_with("config.json", "fifo"), 33, "config.json is not a regular file"),
    "config is a dangling link": (replace_with("config.json", "link"), 30, "has no config.json"),
    "config is /dev/zero": (replace_with("config.json", "zero"), 33, "config.json is not a regular file"),
    # the chat template: tokenizer_config.json or chat_template.jinja
    "chat template list with a list as name": (
        tokenizer_edit(chat_template=[{"name": ["default"], "template": "{{ x }}"}]),
        33,
        "chat_template list has an entry that is not a name and a template",
    ),
    "chat template list with a number as template": (
        tokenizer_edit(chat_template=[{"name": "default", "template": 7}]),
        33,
        "chat_template list has an entry",
    ),
    "tokenizer_config is a fifo": (added("tokenizer_config.json", "fifo"), 33, "is not a regular file"),
    "chat_template.jinja is a fifo": (added("chat_template.jinja", "fifo"), 33, "is not a regular file"),
    "chat_template.jinja is /dev/zero": (added("chat_template.jinja", "zero"), 33, "is not a regular file"),
    "config not utf-8": (lambda f: (f / "config.json").write_bytes(b"\xff\xfe{}"), 33, "is not UTF-8 text"),
    "config nested too deeply": (lambda f: (f / "config.json").write_bytes(DEEP), 33, "not valid JSON"),
    "rope_scaling a string": (config_edit(rope_scaling="yarn"), 33, "wrong type"),
    "quantization_config a string": (config_edit(quantization_config="awq"), 33, "wrong type"),
    "heads not a number": (config_edit(num_attention_heads="many"), 33, "num_attention_heads"),
    "kv heads not a number": (config_edit(num_key_value_heads="four"), 33, "wrong type"),
    "sliding_window not a number": (config_edit(sliding_window="wide", use_sliding_window=True), 33, "wrong type"),
    "experts not a number": (config_edit(num_experts="lots"), 33, "wrong type"),
    "zero layers": (config_edit(num_hidden_layers=0), 33, "layers=0"),
    "negative layers": (config_edit(num_hidden_layers=-4), 33, "layers=-4"),
    "zero heads": (config_edit(num_attention_heads=0), 33, "wrong type or value"),
    "negative kv heads": (config_edit(num_key_value_heads=-1), 33, "kv_heads=-1"),
    "negative context": (config_edit(max_position_embeddings=-5), 33, "max_position=-5"),
    "more sliding layers than layers": (
        config_edit(sliding_window=4096, use_sliding_window=True, layer_types=["sliding_attention"] * 99),
        33,
        "sliding-window layers",
    ),
    # the index
    "weight_map a list": (index_edit(["model-00001-of-00004.safetensors"]), 33, "is not a safetensors index"),
    "weight_map values not strings": (index_edit({"a.weight": 1}), 33, "is not a safetensors index"),
    "index not utf-8": (index_edit(None, raw=b"\xff\xfe"), 33, "is not UTF-8 text"),
    "empty weight_map": (index_edit({}), 33, "lists no tensors"),
    "index is a folder": (replace_with("model.safetensors.index.json", "folder"), 33, "index.json is not a regular"),
    "index is a fifo": (replace_with("model.safetensors.index.json", "fifo"), 33, "index.json is not a regular"),
    "index is /dev/zero": (replace_with("model.safetensors.index.json", "zero"), 33, "index.json is not a regular"),
    "index nested too deeply": (index_edit(None, raw=DEEP), 33, "nested too deeply"),
    "index points outside": (index_edit({"a.weight": "../../etc/passwd"}), 33, "points outside the model folder"),
    "index absolute path": (index_edit({"a.weight": "/etc/passwd"}), 33, "points outside the model folder"),
    "indexed shard is a folder": (shard_replaced("folder"), 33, "is not a regular file"),
    "indexed shard is a dangling link": (shard_replaced("link"), 33, "missing file"),
    "shard without index is a dangling link": (no_index_dangling_link, 33, "not a readable file"),
    # hostile headers
    "offsets as strings": (
        only_shard({"w": {"dtype": "F16", "shape": [2], "data_offsets": ["0", "4"]}}),
        33,
        "data_offsets",
    ),
    "null dimension": (only_shard({"w": {"dtype": "F16", "shape": [None], "data_offsets": [0, 2]}}), 33, "shape"),
    "string dimension": (only_shard({"w": {"dtype": "F16", "shape": ["2"], "data_offsets": [0, 4]}}), 33, "shape"),
    "negative dimension": (
        only_shard({"w": {"dtype": "F16", "shape": [-4096, 4096], "data_offsets": [0, 0]}}),
        33,
        "shape",
    ),
    "dtype a list": (only_shard({"w": {"dtype": ["F16"], "shape": [2], "data_offsets": [0, 4]}}), 33, "dtype"),
    "offsets reversed": (only_shard({"w": {"dtype": "F16", "shape": [2], "data_offsets": [4, 0]}}), 33, "data_offsets"),
    "header nested too deeply": (only_shard(DEEP), 33, "nested too deeply"),
    "overflowing shape": (
        only_shard({"w": {"dtype": "F16", "shape": [2**62, 2**62], "data_offsets": [0, 2**125]}}),
        33,
        "bytes",
    ),
    "header is a list": (only_shard([1, 2]), 33, "not a JSON object"),
    # Compact JSON, as real writers emit it, takes the fast path (safetensors._plainly_whole_numbers); each
    # of these must leave it for the per-tensor checks.
    **{
        f"compact header, {label}": (only_shard(_compact({"w": entry})), 33, text)
        for label, entry, text in (
            ("negative dimension", {"dtype": "F16", "shape": [-4096, -4096], "data_offsets": [0, 2**25]}, "shape"),
            ("true as dimension", {"dtype": "F16", "shape": [True, 2], "data_offsets": [0, 4]}, "shape"),
            ("fraction as dimension", {"dtype": "F16", "shape": [1.5, 2], "data_offsets": [0, 6]}, "shape"),
            ("negative offsets", {"dtype": "F16", "shape": [2], "data_offsets": [-4, 0]}, "data_offsets"),
            ("fraction offsets", {"dtype": "F16", "shape": [2], "data_offsets": [0.0, 4]}, "data_offsets"),
            ("no dtype", {"shape": [2], "data_offsets": [0, 4]}, "lacks dtype, shape or data_offsets"),
            ("unknown dtype", {"dtype": "F12", "shape": [2], "data_offsets": [0, 4]}, "unknown dtype 'F12'"),
        )
    },
    "compact header, a space hides a negative dimension": (
        only_shard(b'{"w":{"dtype":"F16","shape" :[-2,-2],"data_offsets":[0,8]}}'),
        33,
        "shape",
    ),
    "compact header, a second shape key": (
        only_shard(b'{"w":{"dtype":"F16","shape":[4],"shape" :[-2,-2],"data_offsets":[0,8]}}'),
        33,
        "shape",
    ),
}


def _link_shards(source: str, target: str) -> None:
    if source.endswith(".safetensors"):
        os.link(source, target)
    else:
        shutil.copy2(source, target)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_broken_model_folder_is_one_line_and_a_documented_code(case, models, tmp_path):
    edit, code, text = CASES[case]
    folder = tmp_path / BASE
    # Shards are hard links: a copy would write their sparse holes out in full (15 GB a case). No edit writes
    # into a shard; the ones that change a shard unlink it first.
    shutil.copytree(models(BASE), folder, copy_function=_link_shards)
    edit(folder)
    refused({"TARGET_MODEL": str(folder), "ACCELERATORS": "H100:1"}, code, str(folder), text=text)


@pytest.mark.parametrize("args", [["plan"], ["plan", "--json"]])
def test_a_terminal_escape_in_config_json_is_printed_escaped(models, tmp_path, args):
    from tests.support.hostile import run

    folder = tmp_path / BASE
    shutil.copytree(models(BASE), folder, copy_function=_link_shards)
    config_edit(architectures=["Qwen2\x1b[2J\x07ForCausalLM"], model_type="qwen2\x1b]0;owned\x07")(folder)
    code, out, err = run(args, {"TARGET_MODEL": str(folder), "ACCELERATORS": "H100:1", "PATH": "/usr/bin:/bin"})
    assert code == 0, err
    assert "\x1b" not in out + err and "\x07" not in out + err
    assert "Qwen2" in out
