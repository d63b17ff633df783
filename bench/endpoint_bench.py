"""Load an OpenAI-compatible endpoint and report TTFT, inter-token latency and throughput.

    .venv/bin/python bench/endpoint_bench.py --url https://host:8000 --api-key $API_KEY \
        --model Qwen2.5-7B-Instruct --concurrency 8 --requests 64 --max-tokens 128 [--cacert tls.crt] \
        [--png bench.png]

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


def run_bench(client: openai.OpenAI, model: str, concurrency: int, requests: int, max_tokens: int) -> BenchResult:
    lock = threading.Lock()
    timings: list[RequestTiming] = []
    failures = 0

    def one(index: int) -> None:
        nonlocal failures
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

    started = time.perf_counter()
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the endpoint, e.g. http://localhost:8000")
    parser.add_argument("--api-key", default="none")
    parser.add_argument("--model", required=True, help="the served model name")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--cacert", help="trust this certificate (self-signed TLS)")
    parser.add_argument("--png", help="write the distributions here")
    args = parser.parse_args()
    verify = ssl.create_default_context(cafile=args.cacert) if args.cacert else True
    client = openai.OpenAI(
        base_url=f"{args.url.rstrip('/')}/v1",
        api_key=args.api_key,
        max_retries=0,
        timeout=600,
        http_client=openai.DefaultHttpxClient(verify=verify),
    )
    result = run_bench(client, args.model, args.concurrency, args.requests, args.max_tokens)
    print(table(result))
    if args.png:
        plot(result, args.png)
        print(f"\nplot: {args.png}")


if __name__ == "__main__":
    main()
