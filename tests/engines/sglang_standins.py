"""Imported first by the scripts that run in the sglang environment: an empty torchvision.

sglang's packages import multimodal processors that import torchvision at module level. torchvision has
nothing to do with argument parsing, logging or metrics, and PyPI's build does not load beside a +cpu torch,
so an empty stand-in answers those imports. transformers is imported first so that it records torchvision
as absent and never calls into the stand-in.
"""

import sys
import types

import transformers  # noqa: F401


class _Absent(types.ModuleType):
    def __getattr__(self, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {})


for _name in (
    "torchvision",
    "torchvision.transforms",
    "torchvision.transforms.functional",
    "torchvision.io",
    "torchvision.ops",
):
    sys.modules[_name] = _Absent(_name)
