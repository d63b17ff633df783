"""A real endpoint: `python -m entrypoint` starts vLLM on the CPU and serves a tiny model.

The model is a random 2-layer Llama with a trained byte-level tokenizer and a
chat template (tests/engines/make_tiny_model.py), so the answers are nonsense
but every byte goes through the real server: HTTPS with a certificate made
here, the official `openai` client trusting it, API-key enforcement,
Prometheus /metrics, and SIGTERM that lets a streaming request finish and
leaves nothing behind. No GPU is involved: this is the CPU path users get
from the CPU image.
"""

from __future__ import annotations

import re
import shutil
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cli import free_port, run_cli
from tests.support.endpoint import ADMIN_API_KEY, API_KEY, Endpoint, endpoint_env, session_processes
from tests.support.fakehub import FakeHub
from tests.support.paths import BASE_PATH, ROOT
from tests.support.tls import self_signed

# A real server per module fixture or test: minutes on two cores. MAX_RUN_HOURS and the engine dying after it
# served are proven against the stand-in engine (test_supervisor.py); the idle stop below is the real one.
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (made with the openssl command)."""
    return self_signed(tmp_path_factory.mktemp("tls"), "tls", "-nodes")


@pytest.fixture(scope="module")
def endpoint(engine_envs, tiny_model, certificate, tmp_path_factory):
    home = tmp_path_factory.mktemp("endpoint-home")
    cert, key = certificate
    env = endpoint_env(
        home,
        tiny_model,
        free_port(),
        TLS_CERT_FILE=str(cert),
        TLS_KEY_FILE=str(key),
        SHUTDOWN_TIMEOUT="60",
        ADMIN_API_KEY=ADMIN_API_KEY,
        VLLM_SERVER_DEV_MODE="1",  # vLLM's admin routes (sleep, weights, caches, RPC) registered, to be refused
    )
    server = Endpoint(engine_envs["vllm"] / "bin" / "python", env, home / "server.log")
    server.wait_healthy()
    yield server
    server.stop()


def test_models_lists_the_served_name(endpoint):
    assert [model.id for model in endpoint.client().models.list().data] == ["tiny"]


def test_chat_completion(endpoint):
    response = endpoint.client().chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Say hello in one word."}], max_tokens=12, temperature=0
    )
    choice = response.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert choice.finish_reason in ("length", "stop")
    assert response.usage.completion_tokens >= 1 and response.usage.prompt_tokens > 5  # the chat template ran
    print(f"chat completion: {choice.message.content!r} ({response.usage})")


def test_streamed_completion(endpoint):
    stream = endpoint.client().completions.create(
        model="tiny",
        prompt="The quick brown",
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    chunks = list(stream)
    # Tokens are counted by the server: a byte-level detokenizer may send empty text for a token that ends
    # inside a multi-byte character, so counting non-empty chunks would be flaky.
    assert [chunk.usage.completion_tokens for chunk in chunks if chunk.usage] == [8]
    assert len([chunk for chunk in chunks if chunk.choices]) >= 2  # arrived as several server-sent events


def test_wrong_or_missing_api_key_gets_401(endpoint):
    with pytest.raises(openai.AuthenticationError):
        endpoint.client(api_key="sk-wrong").models.list()
    assert endpoint.get("/v1/models")[0] == 401
    assert endpoint.get("/v1/models", {"Authorization": f"Bearer {API_KEY}"})[0] == 200


# Ways of giving no key, or the key wrongly: each must be refused on every route but the open ones.
WRONG = {
    "no key": ("", {}),
    "a wrong key": ("", {"Authorization": "Bearer sk-wrong-0123456789abcdef"}),
    "bearer in lower case": ("", {"Authorization": f"bearer {API_KEY}"}),
    "BEARER": ("", {"Authorization": f"BEARER {API_KEY}"}),
    "two spaces": ("", {"Authorization": f"Bearer  {API_KEY}"}),
    # (A trailing space is no case: HTTP parsers strip it from header values, RFC 9110 5.5.)
    "no scheme": ("", {"Authorization": API_KEY}),
    "the key in the query": (f"?api_key={API_KEY}&key={API_KEY}&token={API_KEY}", {}),
    "x-api-key": ("", {"X-API-Key": API_KEY}),
}


def test_every_route_refuses_a_missing_or_malformed_key(endpoint):
    """Every route of vLLM's table (dev mode is on, so its admin routes are registered too), each way of not
    giving the key, and OPTIONS and HEAD without one: refused; what is open is /health and /metrics."""
    from entrypoint.engines import ENGINES, routes

    table = routes.table("vllm", ENGINES["vllm"].pinned_version)
    served = []
    for route in table.routes:
        path = route.path.replace("{response_id}", "x").replace("{adapter_name}", "x")
        method = next((m for m in route.methods if m not in ("HEAD", "MOUNT", "WEBSOCKET")), "GET")
        tries = [(how, method, query, headers) for how, (query, headers) in WRONG.items()]
        tries += [
            ("OPTIONS", "OPTIONS", "", {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": method})
        ]
        tries += [("HEAD", "HEAD", "", {})]
        for how, verb, query, headers in tries:
            body = b"{}" if verb in ("POST", "PUT") else None
            status, _ = endpoint.request(verb, path + query, {"Content-Type": "application/json", **headers}, body)
            if status not in (401, 403):
                served.append(f"{verb} {path}{query} with {how}: {status}")
    open_ones = {line.split(" with ")[0].split("?")[0] for line in served}
    assert open_ones <= {
        "GET /health",
        "HEAD /health",
        "OPTIONS /health",
        "GET /metrics",
        "HEAD /metrics",
        "OPTIONS /metrics",
    }, served


def test_the_client_key_serves_client_routes_but_no_admin_route(endpoint):
    client = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    admin = {"Authorization": f"Bearer {ADMIN_API_KEY}", "Content-Type": "application/json"}
    for path in ("/invocations", "/tokenize", "/detokenize", "/v1/completions", "/v1/chat/completions"):
        assert endpoint.request("POST", path, client, b"{}")[0] not in (401, 403), path  # 400/422: the body
        assert endpoint.request("POST", path, admin, b"{}")[0] == 401, path  # the admin key is no client key
    assert endpoint.request("POST", "/tokenize", client, b'{"model": "tiny", "prompt": "hi"}')[0] == 200
    assert endpoint.get("/version", client)[0] == 200
    for path in ("/sleep", "/collective_rpc", "/update_weights", "/reset_prefix_cache", "/pause", "/scale_elastic_ep"):
        assert endpoint.request("POST", path, client, b"{}")[0] == 401, path
    # The admin key opens them: two harmless ones, asked for real.
    assert endpoint.request("POST", "/reset_prefix_cache", admin)[0] == 200
    status, body = endpoint.get("/is_sleeping", admin)
    assert status == 200 and "false" in body, body


def test_health_and_metrics_need_no_key(endpoint):
    assert endpoint.get("/health")[0] == 200
    status, text = endpoint.get("/metrics")
    assert status == 200
    families = {family.name: family for family in text_string_to_metric_families(text)}
    generated = sum(
        sample.value for sample in families["vllm:generation_tokens"].samples if sample.name.endswith("_total")
    )
    assert generated >= 1  # the completions above were counted


def test_https_only(endpoint):
    assert endpoint.url.startswith("https://")
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(endpoint.url.replace("https://", "http://") + "/health", timeout=10).read()


def test_health_command_of_the_image(endpoint):
    result = run_cli(
        ["health"],
        {
            "PATH": BASE_PATH,
            "PYTHONPATH": str(ROOT),
            "PORT": endpoint.env["PORT"],
            "TLS_CERT_FILE": endpoint.env["TLS_CERT_FILE"],
        },
    )
    assert result.returncode == 0, result.stderr


def test_log_shows_plan_and_command_but_no_secret(endpoint):
    log = endpoint.log()
    assert "exec: " in log and "--served-model-name tiny" in log and "auth: on" in log and "tls: on" in log
    assert API_KEY not in log


def test_bench_against_the_endpoint(endpoint, tmp_path):
    """bench/endpoint_bench.py works against a real server: every request timed, table and plot written."""
    from bench import endpoint_bench

    result = endpoint_bench.run_bench(endpoint.client(), "tiny", concurrency=2, requests=4, max_tokens=16)
    assert result.failures == 0 and len(result.timings) == 4
    # Tokens as the server counted them; chunks may be fewer (a byte-level detokenizer holds back partial
    # characters), never more.
    assert all(
        timing.tokens == 16 and 1 <= len(timing.token_times) <= 16 and timing.ttft > 0 for timing in result.timings
    )
    assert result.output_tokens == 4 * 16
    text = endpoint_bench.table(result)
    assert "| TTFT (ms) |" in text and "output tokens/s" in text
    endpoint_bench.plot(result, str(tmp_path / "bench.png"))
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sigterm_lets_a_stream_finish_then_stops_everything(endpoint):
    chunks: list[tuple[float, str | None]] = []
    first = threading.Event()

    def stream() -> None:
        response = endpoint.client().completions.create(
            model="tiny",
            prompt="The quick brown",
            max_tokens=600,
            temperature=0,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        for chunk in response:
            chunks.append((time.monotonic(), chunk.choices[0].finish_reason if chunk.choices else None))
            first.set()

    reader = threading.Thread(target=stream)
    reader.start()
    assert first.wait(timeout=120)
    signalled = time.monotonic()
    endpoint.process.send_signal(signal.SIGTERM)  # the pid Docker would signal: exec made it the server
    reader.join(timeout=120)
    after = [reason for at, reason in chunks if at > signalled]
    assert after, "the stream ended before SIGTERM; nothing was drained"
    assert after[-1] == "length"  # finished all its tokens instead of being cut off (SHUTDOWN_TIMEOUT)
    returncode = endpoint.process.wait(timeout=120)
    assert returncode in (0, -signal.SIGTERM), endpoint.log()[-3000:]
    deadline = time.monotonic() + 30
    while session_processes(endpoint.process.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert session_processes(endpoint.process.pid) == []


def test_engine_failing_at_startup_exits_with_its_code(engine_envs, tiny_model, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    config = (broken / "config.json").read_text().replace("LlamaForCausalLM", "NoSuchModelForCausalLM")
    (broken / "config.json").write_text(config)
    server = Endpoint(
        engine_envs["vllm"] / "bin" / "python", endpoint_env(tmp_path, broken, free_port()), tmp_path / "server.log"
    )
    try:
        returncode = server.process.wait(timeout=600)
    finally:
        server.stop()
    log = server.log()
    assert returncode not in (0, None)
    assert "exec: " in log and "NoSuchModelForCausalLM" in log
    assert API_KEY not in log


def test_idle_timeout_on_the_real_server(engine_envs, tiny_model, tmp_path):
    """Requests keep it alive; silence stops it (exit 0) and nothing is left; the cost metrics follow vLLM's
    own token counter."""
    metrics_port = free_port()
    env = endpoint_env(
        tmp_path, tiny_model, free_port(), IDLE_TIMEOUT_MIN="0.3", METRICS_PORT=str(metrics_port), GPU_HOURLY_USD="3.0"
    )
    server = Endpoint(engine_envs["vllm"] / "bin" / "python", env, tmp_path / "server.log")
    try:
        server.wait_healthy()
        client = server.client()
        for _ in range(6):  # 30 s of traffic, longer than the 18 s timeout
            client.completions.create(model="tiny", prompt="Hello", max_tokens=5, temperature=0)
            time.sleep(5)
            assert server.process.poll() is None, server.log()[-2000:]
        last_request = time.monotonic()
        _, engine_text = server.get("/metrics")
        ours = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        values = {
            sample.name: sample.value for family in text_string_to_metric_families(ours) for sample in family.samples
        }
        engine_tokens = sum(
            sample.value
            for family in text_string_to_metric_families(engine_text)
            if family.name == "vllm:generation_tokens"
            for sample in family.samples
            if sample.name.endswith("_total")
        )
        assert values["inference_endpoint_generation_tokens"] == engine_tokens >= 30
        assert values["inference_endpoint_cost_per_1k_generated_tokens_usd"] == pytest.approx(
            values["inference_endpoint_running_cost_usd"] / (engine_tokens / 1000), rel=0.05
        )
        returncode = server.process.wait(timeout=180)
        stop_latency = time.monotonic() - last_request
    finally:
        server.stop()
    log = server.log()
    assert returncode == 0, log[-3000:]
    assert "(IDLE_TIMEOUT_MIN)" in log
    # The self-check: what vLLM says it allocated (cache_config_info) against the plan, within 1%.
    check = re.search(r"kv cache: planned ([\d,]+) tokens, engine allocated ([\d,]+) \(([+-][\d.]+)%\)", log)
    assert check, log[-3000:]
    assert abs(float(check.group(3))) <= 1.0, check.group(0)
    assert values["inference_endpoint_kv_cache_tokens_allocated"] == int(check.group(2).replace(",", ""))
    assert 18 <= stop_latency < 18 + 60
    assert server.leftovers() == []
    print(
        f"idle stop: {stop_latency:.1f} s after the last request (IDLE_TIMEOUT_MIN=0.3 -> 18 s); "
        f"cost per 1k tokens {values['inference_endpoint_cost_per_1k_generated_tokens_usd']:.4f} USD "
        f"for {engine_tokens:.0f} tokens at $3/GPU-hour"
    )


def start_phases(metrics_port: int) -> dict[str, float]:
    """The supervisor's inference_endpoint_start_phase_seconds, by phase (set once the engine answered)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        found = {
            sample.labels["phase"]: sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "inference_endpoint_start_phase_seconds"
            for sample in family.samples
        }
        if found:
            return found
        time.sleep(0.5)
    pytest.fail("the supervisor exported no start phases")


def test_second_start_downloads_no_weights(engine_envs, tiny_model, httpserver, tmp_path):
    """The Hugging Face cache (the compose volume, HF_HOME) makes a restart download nothing: counted on a fake
    Hub. Each start has a fresh HOME and TMPDIR, as a new container has, so only HF_HOME carries over; the
    engine's compile cache is written there too (entrypoint.caches).

    Both starts are supervised (METRICS_PORT), so each says where its time went: the phases, from the
    process's start to the engine's first answer, must add up to the time to /health this test measures
    from outside within 10%, and the first start's download phase is the shard it fetched."""
    hub = FakeHub()
    hub.add("test/tiny-llama", tiny_model)
    httpserver.expect_request(re.compile(".*")).respond_with_handler(hub.handle)
    whole_downloads = []
    for start in range(2):
        home = tmp_path / f"container-{start}"
        home.mkdir()
        # A short temp folder, as a container's /tmp: vLLM's ZeroMQ socket paths must stay under 107 bytes.
        scratch = tempfile.mkdtemp(prefix="ie-")
        env = endpoint_env(
            home,
            Path("unused"),
            free_port(),
            TARGET_MODEL="test/tiny-llama",
            HF_ENDPOINT=httpserver.url_for("").rstrip("/"),
            HF_HUB_OFFLINE="0",
            HF_HOME=str(tmp_path / "volume"),
            TMPDIR=scratch,
            METRICS_PORT=str(metrics_port := free_port()),
        )
        before = len(hub.requests)
        server = Endpoint(engine_envs["vllm"] / "bin" / "python", env, tmp_path / f"start-{start}.log")
        try:
            to_health = server.wait_healthy()
            assert server.client().models.list().data[0].id == "tiny"
            phases = start_phases(metrics_port)
        finally:
            server.process.send_signal(signal.SIGTERM)
            server.process.wait(timeout=120)
            server.stop()
            shutil.rmtree(scratch, ignore_errors=True)
        requests = hub.requests[before:]
        whole_downloads.append([line for line in requests if line.startswith("GET ") and line.endswith(".safetensors")])
        summary = next(line for line in server.log().splitlines() if line.startswith("supervisor: ready in "))
        print(f"start {start}: {summary} (/health after {to_health:.1f} s)")
        assert sum(phases.values()) == pytest.approx(to_health, rel=0.10), summary
        assert float(summary.split()[3]) == pytest.approx(sum(phases.values()), abs=0.1)
        assert {"plan", "engine_start", "load", "compile", "kv_cache", "server"} <= set(phases), summary
        # PREFETCH: the first start fetched the shard before the engine started; the second found it cached.
        assert "download" in phases and (" MB, " in summary) == (start == 0), summary
        assert ("everything already in HF_HOME" in summary) == (start == 1), summary
    assert len(whole_downloads[0]) == 1  # the first start downloads the weights once
    assert whole_downloads[1] == []  # the second start finds them in HF_HOME
    compiled = tmp_path / "volume" / "engine-cache" / "vllm" / "vllm" / "torch_compile_cache"
    assert compiled.is_dir() and any(compiled.rglob("*")), "vLLM's compile cache is not in the volume"
    assert not (tmp_path / "container-0" / ".cache" / "vllm").exists()
