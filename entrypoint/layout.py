"""Which TP x PP x DP (x EP) layouts the planner may try, and the pins a user puts on them (pure).

The rules (docs/adr/0005, 0016): TP divides the attention heads and divides or is a multiple of the KV heads,
inside one node; on one node each stage count is tried with the largest TP that fits beside it; across nodes
TP is the node's GPUs and PP a multiple of the nodes; MIG slices and the CPU get TP=1 PP=1 only. A pin
(TENSOR_PARALLEL_SIZE, PIPELINE_PARALLEL_SIZE, DATA_PARALLEL_SIZE, EXPERT_PARALLEL) fixes one size and the
planner plans the rest, or says in one line why the pin cannot run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .engines.base import Engine
from .errors import SettingError, UnsupportedByEngineError
from .hardware.types import Hardware
from .model.shape import ModelShape

if TYPE_CHECKING:  # pure: the settings module is the configuration edge
    from .settings import Settings


@dataclass(frozen=True)
class Pins:
    tp: int | None = None
    pp: int | None = None
    dp: int | None = None
    ep: bool | Literal["auto"] = "auto"

    @classmethod
    def from_settings(cls, settings: Settings) -> Pins:
        return cls(
            settings.tensor_parallel_size,
            settings.pipeline_parallel_size,
            settings.data_parallel_size,
            settings.expert_parallel,
        )

    def pinned(self) -> list[tuple[str, int]]:
        """(variable, size) of each pinned size."""
        return [(name, value) for name, value in zip(_NAMES, (self.tp, self.pp, self.dp), strict=True) if value]

    def described(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self.pinned())


_NAMES = ("TENSOR_PARALLEL_SIZE", "PIPELINE_PARALLEL_SIZE", "DATA_PARALLEL_SIZE")


def tensor_parallel_ok(shape: ModelShape, tp: int) -> bool:
    """What both engines require: TP divides the heads, and divides or is a multiple of the KV heads."""
    return shape.attention_heads % tp == 0 and (shape.kv_heads % tp == 0 or tp % shape.kv_heads == 0)


def valid_tensor_parallel_sizes(shape: ModelShape, per_node: int, mig: bool = False) -> list[int]:
    """Powers of two up to `per_node` that suit the heads (the sizes the planner tries by itself)."""
    if mig:
        return [1]  # NCCL cannot span MIG instances
    return [1 << k for k in range(per_node.bit_length()) if tensor_parallel_ok(shape, 1 << k)]


def check_pins(pins: Pins, shape: ModelShape, hardware: Hardware) -> None:
    """Refuse pins no engine could run here, before any fit arithmetic."""
    if (hardware.mig or hardware.is_cpu) and ((pins.tp or 1) > 1 or (pins.pp or 1) > 1):
        where = "MIG slices (NCCL cannot span MIG instances)" if hardware.mig else "the CPU path (one device)"
        raise UnsupportedByEngineError(
            f"{pins.described()} asks for tensor or pipeline parallelism on {where}",
            "unset TENSOR_PARALLEL_SIZE and PIPELINE_PARALLEL_SIZE; DATA_PARALLEL_SIZE may still split requests",
        )
    if pins.tp:
        if not tensor_parallel_ok(shape, pins.tp):
            valid = [tp for tp in range(1, hardware.count + 1) if tensor_parallel_ok(shape, tp)]
            raise SettingError(
                f"TENSOR_PARALLEL_SIZE={pins.tp} does not suit the model's {shape.attention_heads} attention heads "
                f"and {shape.kv_heads} KV heads (TP must divide the heads, and divide or be a multiple of the KV "
                "heads)",
                f"for example TENSOR_PARALLEL_SIZE={valid[-1]}; valid here: {', '.join(map(str, valid))}",
            )
        if pins.tp > hardware.count:
            raise SettingError(
                f"TENSOR_PARALLEL_SIZE={pins.tp} is more than the {hardware.count} GPU(s) of one node "
                "(tensor parallelism stays inside a node)",
                f"for example TENSOR_PARALLEL_SIZE={hardware.count}, with PIPELINE_PARALLEL_SIZE across nodes",
            )
    if pins.pp:
        if pins.pp > shape.layers:
            raise SettingError(
                f"PIPELINE_PARALLEL_SIZE={pins.pp} is more than the model's {shape.layers} layers",
                f"for example PIPELINE_PARALLEL_SIZE={min(shape.layers, hardware.total_count)}",
            )
        if hardware.nodes > 1 and pins.pp % hardware.nodes:
            raise SettingError(
                f"PIPELINE_PARALLEL_SIZE={pins.pp} does not split over SKYPILOT_NUM_NODES={hardware.nodes} nodes",
                f"use a multiple of {hardware.nodes}, for example PIPELINE_PARALLEL_SIZE={hardware.nodes}",
            )
    needed = (pins.tp or 1) * (pins.pp or 1) * (pins.dp or 1)
    if needed > hardware.total_count:
        raise SettingError(
            f"{pins.described()} needs {needed} GPUs, and there are {hardware.total_count}",
            "pin fewer, or plan for more GPUs (ACCELERATORS, SKYPILOT_NUM_NODES)",
        )


def candidate_layouts(shape: ModelShape, hardware: Hardware, pins: Pins | None = None) -> list[tuple[int, int]]:
    """(TP, PP) pairs worth trying, fewest pipeline stages first, then the smallest TP.

    One node: each stage count with the largest valid TP that fits beside it, so 3 or 6 GPUs get TP=1 PP=3 or
    TP=2 PP=3. Several nodes: TP is the node's GPUs and PP a multiple of the nodes (TP across nodes is slow).
    MIG slices and the CPU get neither. Pinned sizes are the only ones tried; a pinned DP leaves each replica
    its share of the GPUs.
    """
    pins = pins or Pins()
    if hardware.mig or hardware.is_cpu:
        return [(1, 1)]
    gpus = hardware.total_count // (pins.dp or 1)
    sizes = [pins.tp] if pins.tp else valid_tensor_parallel_sizes(shape, hardware.count)
    if hardware.nodes > 1:
        tp = sizes[-1]
        stages = [pins.pp] if pins.pp else range(hardware.nodes, gpus // tp + 1, hardware.nodes)
        return [(tp, pp) for pp in stages if tp * pp <= gpus]
    layouts = []
    for pp in [pins.pp] if pins.pp else range(1, min(gpus, shape.layers) + 1):
        fitting = [tp for tp in sizes if tp * pp <= gpus]
        if pp == 1 or pins.pp:
            layouts += [(tp, pp) for tp in fitting]
        elif fitting:
            layouts.append((fitting[-1], pp))
    return layouts


def expert_parallel(
    shape: ModelShape, tp: int, dp: int, engine: Engine, pin: bool | Literal["auto"], reasons: list[str]
) -> int:
    """The expert-parallel size (1: experts are tensor-parallel), with a reason when it is above 1."""
    if pin is not False and not shape.is_moe:
        if pin is True:
            raise UnsupportedByEngineError(
                "EXPERT_PARALLEL=true, but the model is dense (no experts to spread)", "unset EXPERT_PARALLEL"
            )
        return 1
    if pin is False:
        if shape.is_moe:
            reasons.append("ep=1: EXPERT_PARALLEL=false, so every expert is sliced TP ways.")
        return 1
    ep = engine.expert_parallel_size(tp, dp)
    if pin == "auto" and tp == 1:
        return 1  # one GPU per replica holds every expert whole
    if ep == 1 or shape.experts % ep:
        if pin is True:
            raise SettingError(
                f"EXPERT_PARALLEL=true, but {engine.name} would spread the {shape.experts} experts over {ep} GPU(s)",
                "pin a TENSOR_PARALLEL_SIZE (or DATA_PARALLEL_SIZE for vLLM) whose group divides the experts, "
                "or unset EXPERT_PARALLEL",
            )
        reasons.append(
            f"ep=1: {shape.experts} experts do not split evenly over {ep} GPUs; experts are tensor-parallel instead."
        )
        return 1
    reasons.append(
        f"ep={ep}: {shape.experts} experts ({shape.experts_per_token} active per token) are spread "
        f"{shape.experts // ep} per GPU instead of slicing every expert {tp} ways."
    )
    return ep
