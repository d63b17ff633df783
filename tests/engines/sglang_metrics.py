"""Run in the sglang environment: sglang's own metric collectors, fed known traffic, print /metrics text.

sglang cannot serve without a GPU, so its /metrics cannot be scraped here. This builds the same
prometheus_client families the server exports (the scheduler's and the tokenizer manager's collectors, from
the pinned sglang) and drives them through their own methods: `emit_constants` with a KV cache of 400,000
tokens (what a scheduler emits once its pool is allocated), `log_stats` with 3 running requests, then
`observe_one_finished_request` for 30 plain and 12 streamed requests that generate 12,345 tokens in all.

usage: python sglang_metrics.py MODEL_DIR SERVED_NAME  -> the exposition text on stdout
MODEL_DIR holds a config.json (no weights): ServerArgs resolves it, offline.
"""

import sys

import sglang_standins  # noqa: F401  (first: an empty torchvision)

# isort: split
from prometheus_client import REGISTRY, generate_latest
from sglang.srt import runtime_context
from sglang.srt.disaggregation.utils import DisaggregationMode
from sglang.srt.observability.metrics_collector import (
    QueueCount,
    SchedulerMetricsCollector,
    SchedulerStats,
    TokenizerMetricsCollector,
)
from sglang.srt.server_args import ServerArgs

RUNNING = 3
KV_TOKENS = 400_000
FINISHED = ((False, 30, 10_000), (True, 12, 2_345))  # (streamed, requests, generated tokens)


def main() -> None:
    model_dir, served_name = sys.argv[1:3]
    server_args = ServerArgs(model_path=model_dir, served_model_name=served_name, device="cpu", enable_metrics=True)
    # The collectors read the process-wide config that a scheduler process publishes at start-up.
    runtime_context.publish(server_args, role="scheduler")
    labels = {"model_name": served_name}
    # The labels SchedulerMetricsCollector.init_new gives rank 0 of a plain (not disaggregated) server.
    scheduler = SchedulerMetricsCollector(
        server_args=server_args,
        labels={
            **labels,
            "engine_type": DisaggregationMode.to_engine_type(DisaggregationMode.NULL),
            "tp_rank": 0,
            "pp_rank": 0,
            "moe_ep_rank": 0,
        },
    )
    scheduler.emit_constants(
        max_total_num_tokens=KV_TOKENS,
        max_total_num_tokens_swa=None,
        weight_memory_usage_gb=14.2,
        kv_cache_memory_usage_gb=21.4,
        graph_memory_usage_gb={"decode": 0.6},
        max_running_requests_under_SLO=None,
        page_size=1,
        num_pages=KV_TOKENS,
        context_len=32768,
        startup_available_gpu_memory_gb=78.6,
    )
    scheduler.log_stats(SchedulerStats(num_running_reqs=QueueCount(total=RUNNING)))
    tokenizer = TokenizerMetricsCollector(server_args=server_args, labels=labels)
    for streamed, requests, tokens in FINISHED:
        for index in range(requests):
            share = tokens // requests + (1 if index < tokens % requests else 0)
            tokenizer.observe_one_finished_request(
                labels,
                prompt_tokens=100,
                generation_tokens=share,
                cached_tokens=0,
                e2e_latency=0.5,
                has_grammar=False,
                is_streaming=streamed,
            )
    sys.stdout.write(generate_latest(REGISTRY).decode())


if __name__ == "__main__":
    main()
