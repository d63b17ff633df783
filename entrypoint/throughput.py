"""OPTIMIZE: which of the layouts that hold the context to serve with (pure; docs/adr/0020).

Decode is memory-bound: every step each GPU of a replica reads its share of the weights and of the batch's
KV cache once, in parallel, so a replica of `batch` sequences makes

    tokens/s  =  batch x HBM bandwidth / (weights per GPU + the batch's KV cache per GPU)  x  efficiency(ranks)

and a layout serves `replicas` times that. More GPUs per replica leave more room for KV cache, so bigger
batches; the all-reduce of every layer costs efficiency(n) = 1 / (1 + 0.1 (n - 1)) per replica of n ranks.
That step is read from NVIDIA AIConfigurator's measured vLLM data (Llama-3.1-8B on H100s at equal batch:
TP 2, 4, 8 give 0.91, 0.77 and 0.58 of TP 1's tokens per GPU; bench/layout_bench.py). A batch stops
gaining past BUSY_BATCH sequences, where decode turns compute-bound (an H100 does ~295 FLOPs per byte it
reads; two per weight per token) and vLLM's own max_num_seqs on most GPUs stops it.

throughput: the layout with the most tokens/s for TYPICAL_REQUEST_TOKENS requests, the fewer GPUs per
replica among near-equals. latency: the largest TP, for the fastest single stream (NIM's latency profiles).
"""

from __future__ import annotations

from dataclasses import dataclass

from .sizing import Sizing

BUSY_BATCH = 256  # sequences per replica past which decode no longer gains from a bigger batch
RANK_COST = 0.1  # efficiency(n) = 1 / (1 + RANK_COST x (n - 1)) for a replica of n GPUs
NEAR_EQUAL = 0.03  # a larger TP must win by more than this to be chosen


@dataclass(frozen=True)
class Score:
    tp: int
    pp: int
    replicas: int
    batch: float  # concurrent requests of the typical length per replica, at most BUSY_BATCH
    tokens_per_second: float  # all replicas together


def score(sizing: Sizing, tp: int, pp: int, typical_tokens: int, replicas: int) -> Score:
    hardware = sizing.hardware
    bandwidth = (hardware.spec.hbm_gbps if hardware.spec else 0) * 1e9
    held = sizing.concurrency(typical_tokens, tp, pp)
    batch = min(held, BUSY_BATCH)
    kv_read = sizing.kv_available(tp, pp) * batch / held if held else 0
    step_bytes = sizing.weights_per_gpu(tp, pp) + kv_read
    per_replica = batch * bandwidth / step_bytes / (1 + RANK_COST * (tp * pp - 1)) if step_bytes else 0.0
    return Score(tp, pp, replicas, batch, per_replica * replicas)


def choose(
    sizing: Sizing, layouts: list[tuple[int, int]], optimize: str, typical_tokens: int
) -> tuple[tuple[int, int], list[Score]]:
    """The layout to serve with, of `layouts` (all of one stage count, smallest TP first), and the scores
    that chose it (empty when there was nothing to weigh)."""
    if len(layouts) == 1:
        return layouts[0], []
    if optimize == "latency":
        return max(layouts, key=lambda layout: layout[0]), []
    if not (sizing.hardware.spec and sizing.hardware.spec.hbm_gbps):
        return layouts[0], []  # no bandwidth to weigh by: the fewest GPUs per replica
    gpus = sizing.hardware.total_count // (sizing.pins.dp or 1)
    scores = [score(sizing, tp, pp, typical_tokens, sizing.pins.dp or gpus // (tp * pp)) for tp, pp in layouts]
    best = scores[0]
    for candidate in scores[1:]:
        if candidate.tokens_per_second > best.tokens_per_second * (1 + NEAR_EQUAL):
            best = candidate
    return (best.tp, best.pp), scores
