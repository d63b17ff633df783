"""Settings -> plan -> argv in-process, as `python -m entrypoint plan` does it but with no GPU or Hub: the one
helper every planning test uses."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from entrypoint import launch
from entrypoint.engines import ENGINES
from entrypoint.hardware.types import Hardware, from_accelerators
from entrypoint.model.info import ModelInfo
from entrypoint.model.source import read_model
from entrypoint.plan import Plan, make_plan
from entrypoint.settings import Settings, load


@cache
def model_info(folder: str) -> ModelInfo:
    """A generated folder's headers, read once per test run."""
    return read_model(folder)


def plan_env(
    env: Mapping[str, str], model_folder: str | None = None, hardware: Hardware | None = None
) -> tuple[Settings, Plan]:
    """The plan for `env` (ACCELERATORS, or `hardware`); the model comes from `model_folder` when TARGET_MODEL
    is a repo id the plan should show, else from TARGET_MODEL itself."""
    settings = load(dict(env))
    if hardware is None:
        assert settings.accelerators is not None, "plan_env needs ACCELERATORS or hardware"
        hardware = from_accelerators(settings.accelerators)
    draft = (
        model_info(settings.spec_draft_model)
        if settings.spec_enabled and settings.spec_draft_model and settings.spec_draft_model.startswith("/")
        else None
    )
    model = model_info(model_folder or settings.target_model)
    model = launch.with_serving_files(model, settings, offline=True)
    return settings, make_plan(settings, hardware, model, ENGINES[settings.engine], draft)


def command_env(
    env: Mapping[str, str],
    model_folder: str | None = None,
    user_args: tuple[str, ...] = (),
    environ: Mapping[str, str] | None = None,
) -> tuple[launch.Launch, list[str]]:
    """What would be exec'd for `env`: the launch, and its argv as printed (secrets as ***)."""
    settings, plan = plan_env(env, model_folder)
    engine = ENGINES[settings.engine]
    started = launch.prepare(engine, settings, plan, environ or {}, user_args, python="python3")
    return started, launch.shown_argv(started, engine)
