"""Secrets given the ways people and attackers give them: each case ends as a documented exit code or a
clean start, with no traceback and the secret in no output, no printed argv and no `plan --json`."""

from __future__ import annotations

import io
import json

import pytest

from tests.support.cli import report, run_cli

KEY = "sk-hostile-0123456789abcdef"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("8000", "shorter than 16 characters"),  # would turn every "8000" in the log into ***
        ("sk-short", "shorter than 16 characters"),
        ("sk-0123456789abcdef\nsecond-line", "whitespace or control characters"),  # a two-line API_KEY_FILE
        ("sk-0123456789 abcdef", "whitespace or control characters"),
        ("sk-0123456789abcdef\x1b[2J", "whitespace or control characters"),  # a terminal escape
        ("sk-0123456789abcdef\x00", "whitespace or control characters"),
    ],
)
@pytest.mark.parametrize("from_file", [False, True])
def test_weak_or_malformed_keys_are_refused(serve_env, tmp_path, value, why, from_file):
    if from_file:
        path = tmp_path / "api_key"
        path.write_bytes(value.encode() + b"\n")
        env = serve_env(API_KEY_FILE=str(path), DEBUG="1")
    else:
        if "\x00" in value:
            pytest.skip("an environment variable cannot hold NUL")
        env = serve_env(API_KEY=value, DEBUG="1")
    result = run_cli(["plan", "--json"], env)
    assert result.returncode == 10, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith("error: API_KEY='***' is not valid: it ") and why in line
    assert "Traceback" not in result.stderr or "DEBUG" in env  # with DEBUG=1 a traceback is wanted, redacted
    secret_part = value.split("\n")[0].split(" ")[0].split("\x1b")[0]
    assert secret_part not in result.stdout + result.stderr


@pytest.mark.parametrize("token", ["hf_abc def", "hf_abc\tdef", "hf_abc\x07"])
def test_tokens_with_whitespace_or_control_characters_are_refused(cli, token):
    result = cli(["plan"], TARGET_MODEL="Qwen/Qwen2.5-7B-Instruct", ACCELERATORS="H100:1", HF_TOKEN=token)
    assert result.returncode == 10
    assert result.stderr.startswith("error: HF_TOKEN='***' is not valid: it contains whitespace or control")
    assert "hf_abc" not in result.stderr


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
@pytest.mark.parametrize(
    "spelling",
    [
        ["--api-key", KEY],
        [f"--api-key={KEY}"],
        ["--api_key", KEY],  # vLLM takes underscores
        [f"--api_key={KEY}"],
        ["--api-k", KEY],  # argparse takes a unique prefix
        [f"--api-ke={KEY}"],
    ],
)
def test_a_key_in_extra_args_is_hidden_and_turns_auth_on(serve_env, engine, spelling):
    # The exec line and `plan --json` print the same redacted argv (launch.shown_argv): the exec line here,
    # `plan --json` in the container-argument test below.
    env = serve_env(engine, EXTRA_ARGS=" ".join(spelling))
    served = run_cli([], env)
    assert served.returncode == 0, served.stderr
    assert KEY not in served.stdout + served.stderr
    assert "auth: on" in served.stderr  # the engine enforces the key, so the log must not say off
    assert "where `ps` shows it" in served.stderr
    assert KEY in " ".join(report(env)["argv"])  # the user's flag still reaches the engine


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_a_key_in_plan_json_and_in_container_arguments_is_hidden(serve_env, engine):
    env = serve_env(engine, EXTRA_ARGS=f"--api_key={KEY}")
    planned = run_cli(["plan", "--json"], env)
    assert planned.returncode == 0 and KEY not in planned.stdout + planned.stderr
    assert "--api_key=***" in json.loads(planned.stdout)["argv"]
    served = run_cli(["--api-k", KEY], serve_env(engine))
    assert served.returncode == 0
    assert KEY not in served.stdout + served.stderr and "auth: on" in served.stderr


def test_ssl_keyfile_is_a_flag_of_its_own_not_a_secret_prefix(serve_env):
    env = serve_env(EXTRA_ARGS="--ssl-keyfile /run/secrets/tls.key")
    argv = json.loads(run_cli(["plan", "--json"], env).stdout)["argv"]
    assert argv[argv.index("--ssl-keyfile") + 1] == "/run/secrets/tls.key"


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_an_inherited_engine_key_variable_turns_auth_on(serve_env, engine):
    variable = {"vllm": "VLLM_API_KEY", "sglang": "INFERENCE_ENDPOINT_SGLANG_API_KEY"}[engine]
    env = serve_env(engine, **{variable: KEY})
    served = run_cli([], env)
    assert served.returncode == 0, served.stderr
    assert "auth: on" in served.stderr and f"{variable} is set in the environment" in served.stderr
    assert KEY not in served.stdout + served.stderr


def test_a_password_in_hf_endpoint_is_never_printed(tmp_path, monkeypatch, capfd):
    """In-process against a port nobody listens on (huggingface_hub's retry back-off not slept): neither its
    retry warnings, nor our error, nor the DEBUG traceback shows the mirror's password."""
    import huggingface_hub.utils._http as hub_http

    from entrypoint import cli
    from tests.support.cli import clean_env

    monkeypatch.setattr(hub_http.time, "sleep", lambda seconds: None)
    endpoint = "http://mirror-user:hunter2-secret@127.0.0.1:9"
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", endpoint)
    monkeypatch.setattr(
        "huggingface_hub.constants.HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    env = clean_env(
        tmp_path, TARGET_MODEL="Qwen/Qwen2.5-7B-Instruct", ACCELERATORS="H100:1", DEBUG="1", HF_ENDPOINT=endpoint
    )
    stdout, stderr = io.StringIO(), io.StringIO()
    code = cli.main(["plan"], env, stdout, stderr)
    out, err = capfd.readouterr()  # what huggingface_hub's own logging wrote
    printed = stdout.getvalue() + stderr.getvalue() + out + err
    assert code == 34, printed
    assert "hunter2-secret" not in printed
    (line,) = [line for line in stderr.getvalue().splitlines() if line.startswith("error:")]
    assert line.startswith("error: cannot reach the Hugging Face Hub at http://127.0.0.1:9 ")
    assert "Retrying in" not in printed  # no screen of retry warnings before the one line


@pytest.mark.parametrize("case", ["not-pem", "key-of-another-cert", "encrypted-key"])
def test_tls_files_are_loaded_before_anything_else(cli, models, tmp_path, case):
    """A file that is no certificate fails in one line before any download, not minutes later in the engine."""
    from tests.support.tls import self_signed

    def make(name: str, *options: str) -> tuple[str, str]:
        cert, key = self_signed(tmp_path, name, *options)
        return str(cert), str(key)

    cert, key = make("one", "-nodes")
    if case == "not-pem":
        cert = str(tmp_path / "not.crt")
        (tmp_path / "not.crt").write_text("hello\n")
    elif case == "key-of-another-cert":
        key = make("two", "-nodes")[1]
    else:
        cert, key = make("three", "-passout", "pass:sekrit-passphrase")
    result = cli(
        ["plan"],
        TARGET_MODEL=str(models("Llama-3.1-8B-Instruct")),
        ACCELERATORS="H100:1",
        TLS_CERT_FILE=cert,
        TLS_KEY_FILE=key,
    )
    assert result.returncode == 10, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: TLS_CERT_FILE={cert} and TLS_KEY_FILE={key} are not a PEM certificate")
    assert "openssl req -x509" in line


def test_a_missing_draft_is_named_as_spec_draft_model(cli, models):
    result = cli(
        ["plan"],
        TARGET_MODEL=str(models("Llama-3.1-8B-Instruct")),
        ACCELERATORS="H100:1",
        SPEC_ENABLED="true",
        SPEC_DRAFT_MODEL="/models/no-such-draft",
    )
    assert result.returncode == 30
    assert result.stderr.startswith("error: SPEC_DRAFT_MODEL=/models/no-such-draft is not a folder")


@pytest.mark.parametrize(
    ("content", "text"),
    [
        (b"\xff\xfe\x00binary", "does not hold a secret: it is binary"),
        (b"x" * 5000, "larger than 4096 bytes"),
        (None, "is not a regular file"),  # a folder
        ("fifo", "is not a regular file"),  # would block the read forever
    ],
)
def test_secret_files_that_are_not_secrets(cli, tmp_path, content, text):
    import os

    path = tmp_path / "api_key"
    if content is None:
        path.mkdir()
    elif content == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(content)
    result = cli(["plan"], TARGET_MODEL="m", ACCELERATORS="H100:1", API_KEY_FILE=str(path))
    assert result.returncode == 10
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: API_KEY_FILE='{path}' ") and text in line


def test_an_admin_key_alone_is_hidden_but_leaves_v1_open(serve_env):
    """sglang's --admin-api-key guards admin endpoints only: hidden like any secret, and auth stays off."""
    served = run_cli([], serve_env("sglang", EXTRA_ARGS=f"--admin-api-key {KEY}"))
    assert served.returncode == 0, served.stderr
    assert KEY not in served.stdout + served.stderr
    assert "auth: off" in served.stderr


# Secrets hidden whole: (secrets given, text printed, what must be shown). Masked one after another, a short
# secret hidden first cut a longer one that contains it ("0" left 15 of the key's 16 characters).
MASKED = [
    (["0", "sk-0123456789abcdef"], '"VLLM_API_KEY": "sk-0123456789abcdef"', '"VLLM_API_KEY": "***"'),
    (["sk-0123456789abcdef", "0"], "key sk-0123456789abcdef, port 8000", "key ***, port 8*********"),
    (["abcdef", "sk-abcdef-abcdef"], "sk-abcdef-abcdef and abcdef", "*** and ***"),
    (["a.b*c", "x"], "a.b*c", "***"),  # a secret is text, not a pattern
    (["hunter2"], "https://u:hunter2@mirror/x", "https://***@mirror/x"),
    ([], "https://u:pa/ss@word@mirror/x", "https://***@mirror/x"),  # a raw / and @ in a pasted password
    ([], "x_hf_abcdefghijklmnopqrstuvwxyz0123456789_y", "x_***_y"),  # a token between underscores
]


def test_a_secret_too_short_to_be_real_is_refused_without_garbling_the_line(models):
    """Masked, `API_KEY=e` turned every "e" of its own refusal into ***."""
    from tests.support.hostile import refused

    env = {"TARGET_MODEL": str(models("Llama-3.1-8B-Instruct")), "ACCELERATORS": "H100:1", "API_KEY": "e"}
    line = refused(env, 10, "API_KEY", text="is not valid: it is shorter than 16 characters")
    assert line.startswith("error: API_KEY='***'")


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_several_keys_after_one_flag_are_all_hidden(serve_env, engine):
    """vLLM's --api-key takes one or more keys: each is hidden in the printed argv, not only the first."""
    second = "sk-hostile-second-0123456789"
    planned = run_cli(["plan", "--json"], serve_env(engine, EXTRA_ARGS=f"--api-key {KEY} {second} --max-loras 2"))
    assert planned.returncode == 0, planned.stderr
    assert KEY not in planned.stdout + planned.stderr and second not in planned.stdout + planned.stderr
    argv = json.loads(planned.stdout)["argv"]
    assert argv[argv.index("--api-key") : argv.index("--api-key") + 4] == ["--api-key", "***", "***", "--max-loras"]


@pytest.mark.parametrize(("secrets", "printed", "shown"), MASKED)
def test_secrets_are_masked_whole_longest_first(secrets, printed, shown):
    from entrypoint import redact

    assert redact.text(printed, secrets) == shown


CANARY = "hf_CredentialCanary0123456789abcdefXY"
# Credentials inside a value, whatever the setting: (settings, exit code, the variable the line names).
CREDENTIALS = [
    ({"TARGET_MODEL": f"https://user:{CANARY}@huggingface.co/org/model"}, 30, "TARGET_MODEL"),
    ({"TARGET_MODEL": f"https://{CANARY}@huggingface.co/org/model"}, 30, "TARGET_MODEL"),
    ({"TARGET_MODEL": f"org/model?token={CANARY}"}, 30, "TARGET_MODEL"),
    ({"TARGET_MODEL": f"/models/x?access_token={CANARY}&rev=main"}, 30, "TARGET_MODEL"),
    ({"SPEC_ENABLED": "true", "SPEC_DRAFT_MODEL": f"https://u:{CANARY}@hub/org/draft"}, 30, "SPEC_DRAFT_MODEL"),
    ({"LORA_MODULES": f"sql=/models/lora?token={CANARY}"}, 30, "LORA_MODULES"),
    ({"LORA_MODULES": f"sql=https://u:{CANARY}@hub/org/lora"}, 30, "LORA_MODULES"),
    ({"SERVED_MODEL_NAME": f"x?key={CANARY}", "PORT": "0"}, 10, "PORT"),
]


@pytest.mark.parametrize(("settings", "code", "named"), CREDENTIALS, ids=[str(row[0]) for row in CREDENTIALS])
def test_a_credential_inside_a_value_is_never_printed(models, settings, code, named):
    from tests.support.hostile import refused

    env = {"TARGET_MODEL": str(models("Llama-3.1-8B-Instruct")), "ACCELERATORS": "H100:1", **settings}
    line = refused(env, code, named, hidden=(CANARY, CANARY[3:12]))
    assert "***" in line or named == "PORT"


def test_a_credential_in_hf_endpoint_is_hidden_in_huggingface_hubs_own_words(models):
    """A token in a query string of HF_ENDPOINT reaches only huggingface_hub: its errors print the URL."""
    from tests.support.hostile import refused

    env = {"TARGET_MODEL": "org/model", "ACCELERATORS": "H100:1", "HF_HUB_OFFLINE": "0"}
    refused({**env, "HF_ENDPOINT": f"http://127.0.0.1:9/?token={CANARY}"}, 34, "Hub", hidden=(CANARY,))


def test_health_never_waits_on_a_fifo(tmp_path):
    """The image's HEALTHCHECK reads TLS_CERT_FILE's name to pick https: a FIFO there blocked it forever."""
    import os

    from tests.support.hostile import refused

    fifo = tmp_path / "tls.crt"
    os.mkfifo(fifo)
    refused({"TLS_CERT_FILE": str(fifo), "PORT": "9"}, 10, "TLS_CERT_FILE", ["health"], text="a FIFO")
