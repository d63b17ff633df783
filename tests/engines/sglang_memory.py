"""Run in the sglang environment: the mem_fraction_static sglang picks by itself, from its own code.

usage: python sglang_memory.py CASES_JSON  -> JSON list of {"mem_fraction_static", "chunked_prefill_size"} on stdout
CASES_JSON: [{"model": DIR, "gpu_mib": 81559, "tp": 1, "pp": 1}, ...]; each DIR holds a config.json.

sglang resolves its arguments through `ServerArgs.resolve_once()` (arg_groups/memory_hook.py,
handle_gpu_memory_settings). Two things it would read from a GPU are given instead: the GPU's memory (what
`get_device_memory_capacity` reads from nvidia-smi, in MiB) and the platform's default for prefill CUDA graphs
(on by default on CUDA, `cuda_graph_config.default_prefill_backend`), so the figures are those of a CUDA
machine with that GPU.
"""

import json
import sys

import sglang_standins  # noqa: F401  (first: an empty torchvision)

# isort: split
from sglang.srt.arg_groups import memory_hook
from sglang.srt.arg_groups.overrides import resolved_view
from sglang.srt.model_executor import cuda_graph_config
from sglang.srt.server_args import ServerArgs


def main() -> None:
    cuda_graph_config.default_prefill_backend = lambda: cuda_graph_config.Backend.BREAKABLE
    results = []
    for case in json.loads(sys.argv[1]):
        memory_hook.get_device_memory_capacity = lambda device=None, mib=case["gpu_mib"]: mib
        args = ServerArgs(model_path=case["model"], tp_size=case["tp"], pp_size=case["pp"], device="cuda")
        args.resolve_once()
        view = resolved_view(args)
        results.append(
            {"mem_fraction_static": view.mem_fraction_static, "chunked_prefill_size": view.chunked_prefill_size}
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
