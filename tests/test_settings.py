"""Every malformed setting: one line naming the variable, the value and an example; its own exit code."""

from __future__ import annotations

import pytest

from entrypoint.errors import EXIT_CODES, MissingSettingError, SettingError
from entrypoint.settings import SETTINGS, load

BAD = [
    # (variable, value, exit code, text in the message)
    ("PORT", "abc", 10, "PORT='abc' is not valid"),
    ("PORT", "70000", 10, "between 1 and 65535"),
    ("MEM_FRACTION", "1.5", 10, "MEM_FRACTION='1.5'"),
    ("MEM_FRACTION", "0", 10, "greater than 0"),
    ("MEM_FRACTION", "lots", 10, "decimal number"),
    ("ACCELERATORS", "H100:0", 10, "from 1 to 16"),
    ("ACCELERATORS", "H100:99999999999", 10, "from 1 to 16"),
    ("ACCELERATORS", "H100:1.5", 10, "whole number"),
    ("ACCELERATORS", "H1000:4", 12, "unknown GPU 'H1000'"),
    ("ENGINE", "tgi", 10, "one of: sglang, vllm"),
    ("SPEC_ENABLED", "maybe", 10, "SPEC_ENABLED='maybe'"),
    ("TRUST_REMOTE_CODE", "sure", 10, "TRUST_REMOTE_CODE"),
    ("MAX_MODEL_LEN", "32k", 10, "plain integer"),
    ("MAX_MODEL_LEN", "-5", 10, "between 1"),
    ("DTYPE", "int8", 10, "auto, bfloat16"),
    ("SPEC_NUM_TOKENS", "0", 10, "between 1 and 64"),
]


@pytest.mark.parametrize(("name", "value", "code", "text"), BAD, ids=[f"{b[0]}={b[1]}" for b in BAD])
def test_bad_setting_exits_with_one_line(cli, name, value, code, text):
    result = cli(["plan"], TARGET_MODEL="Qwen/Qwen2.5-7B-Instruct", **{name: value})
    assert result.returncode == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert text in lines[0] and name in lines[0]
    assert "for example" in lines[0] or "e.g." in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_missing_target_model(cli):
    result = cli(["plan"], ACCELERATORS="H100:1")
    assert result.returncode == MissingSettingError.exit_code
    assert result.stderr.strip() == (
        "error: TARGET_MODEL is not set; set it, for example -e TARGET_MODEL=Qwen/Qwen2.5-7B-Instruct"
    )


def test_debug_shows_the_traceback(cli):
    result = cli(["plan"], TARGET_MODEL="x", PORT="abc", DEBUG="1")
    assert result.returncode == 10 and "Traceback" in result.stderr


def test_defaults():
    settings = load({"TARGET_MODEL": "Qwen/Qwen2.5-7B-Instruct"})
    assert (settings.engine, settings.port, settings.mem_fraction, settings.dtype, settings.spec_enabled) == (
        "sglang",
        8000,
        None,  # the engine's own fraction
        "auto",
        False,
    )
    assert settings.accelerators is None and settings.max_model_len is None


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("1", True),
        ("TRUE", True),
        ("on", True),
        ("yes", True),
        ("0", False),
        ("false", False),
        ("Off", False),
        ("no", False),
    ],
)
def test_one_boolean_parser(raw, value):
    assert load({"TARGET_MODEL": "m", "SPEC_ENABLED": raw}).spec_enabled is value


def test_dtype_aliases():
    assert load({"TARGET_MODEL": "m", "DTYPE": "bf16"}).dtype == "bfloat16"
    assert load({"TARGET_MODEL": "m", "DTYPE": "half"}).dtype == "float16"


def test_secret_from_file(tmp_path):
    secret = tmp_path / "hf_token"
    secret.write_text("hf_from_file_0123456789\n")
    assert load({"TARGET_MODEL": "m", "HF_TOKEN_FILE": str(secret)}).hf_token == "hf_from_file_0123456789"


def test_secret_and_its_file_are_exclusive(tmp_path):
    secret = tmp_path / "api_key"
    secret.write_text("k")
    with pytest.raises(SettingError, match="both API_KEY and API_KEY_FILE"):
        load({"TARGET_MODEL": "m", "API_KEY": "k2", "API_KEY_FILE": str(secret)})


def test_missing_secret_file_names_the_variable(tmp_path):
    with pytest.raises(SettingError, match="HF_TOKEN_FILE='/nope' cannot be read"):
        load({"TARGET_MODEL": "m", "HF_TOKEN_FILE": "/nope"})


def test_secrets_never_appear_in_errors_or_output(cli, tmp_path):
    token, key = "hf_SUPERSECRETTOKEN", "sk-VERYSECRETKEY"
    for env in ({"PORT": "abc"}, {"ACCELERATORS": "H1000"}, {}, {"MEM_FRACTION": "9"}):
        result = cli(
            ["plan", "--json"],
            **{
                "TARGET_MODEL": "/nonexistent/model",
                "HF_TOKEN": token,
                "API_KEY": key,
                "ACCELERATORS": "H100:1",
                "DEBUG": "1",
                **env,
            },
        )
        assert result.returncode != 0
        assert token not in result.stdout + result.stderr and key not in result.stdout + result.stderr


def test_typo_warning():
    assert load({"TARGET_MODEL": "m", "MAX_MODE_LEN": "4096"}).warnings == (
        "MAX_MODE_LEN is not a setting this image reads; did you mean MAX_MODEL_LEN?",
    )
    assert load({"TARGET_MODEL": "m", "HOSTNAME": "x", "PATH": "/bin"}).warnings == ()


def test_table_is_complete(tmp_path):
    pem = tmp_path / "tls.pem"
    pem.write_text("x")
    names = {setting.name for setting in SETTINGS}
    assert {
        "TARGET_MODEL",
        "ACCELERATORS",
        "ENGINE",
        "SERVED_MODEL_NAME",
        "PORT",
        "MAX_MODEL_LEN",
        "DTYPE",
        "QUANTIZATION",
        "MEM_FRACTION",
        "HF_TOKEN",
        "SPEC_ENABLED",
        "SPEC_DRAFT_MODEL",
        "SPEC_METHOD",
        "SPEC_NUM_TOKENS",
        "HF_REVISION",
        "API_KEY",
    } <= names
    for setting in SETTINGS:  # every example parses: the hints never lie
        if setting.name.startswith("TLS_"):  # file paths: the example's folder exists only in a container
            assert setting.example.startswith("/run/secrets/")
            load({"TARGET_MODEL": "m", "TLS_CERT_FILE": str(pem), "TLS_KEY_FILE": str(pem)})
        elif setting.name == "CHAT_TEMPLATE":  # a file in the container's model volume
            assert setting.example.startswith("/models/")
            load({"TARGET_MODEL": "m", "CHAT_TEMPLATE": str(pem)})
        elif not setting.secret:
            load({"TARGET_MODEL": "m", setting.name: setting.example})


@pytest.mark.parametrize(
    ("env", "text"),
    [
        (
            {"TLS_CERT_FILE": "/nonexistent.pem"},
            "TLS_CERT_FILE='/nonexistent.pem' is not valid: the file cannot be read",
        ),
        ({"TLS_KEY_FILE": __file__}, "TLS_KEY_FILE is set but TLS_CERT_FILE is not"),
    ],
)
def test_tls_settings(env, text):
    with pytest.raises(SettingError) as caught:
        load({"TARGET_MODEL": "m", **env})
    assert text in caught.value.message


def test_exit_codes_are_distinct():
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)
    assert 0 not in EXIT_CODES.values() and 1 not in EXIT_CODES.values()
