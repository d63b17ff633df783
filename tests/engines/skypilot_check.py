"""Run inside the SkyPilot environment: parse task YAMLs with SkyPilot's own parser.

usage: python skypilot_check.py REQUEST_JSON  -> prints one JSON result per YAML

REQUEST_JSON: {"files": [...], "env_overrides": {...}, "secrets_overrides": {...}}
          or: {"config": path, "cloud": "aws", "region": ..., "keys": [...]} for a ~/.sky/config.yaml
              snippet, loaded and validated by SkyPilot's own config loader
HOME and SKY_RUNTIME_DIR must point at a folder seeded with a small accelerator
catalog (SkyPilot would download it otherwise); the caller sets them.
"""

import json
import sys

import yaml


def describe(task) -> dict:
    resources = list(task.resources)
    service = task.service
    return {
        "name": task.name,
        "num_nodes": task.num_nodes,
        "envs": dict(task.envs),
        "run": task.run,
        # Secrets given a value at launch, and those left for --secret (managed references).
        "secrets": sorted({ref.name for ref in task.managed_secret_refs} | set(task.secrets)),
        "accelerators": [r.accelerators for r in resources],
        "image_ids": [r.image_id for r in resources],
        "ports": [r.ports for r in resources],
        "use_spot": [r.use_spot for r in resources],
        "disk_size": [r.disk_size for r in resources],
        "storage_mounts": {
            dst: {"name": storage.name, "source": storage.source, "mode": storage.mode.value}
            for dst, storage in (task.storage_mounts or {}).items()
        },
        "service": None
        if service is None
        else {
            key.lstrip("_"): value
            for key, value in vars(service).items()
            if isinstance(value, (str, int, float, bool, dict, list, type(None)))
        },
    }


def read_config(request: dict) -> dict:
    import os

    os.environ["SKYPILOT_GLOBAL_CONFIG"] = request["config"]
    from sky import skypilot_config

    try:
        skypilot_config.reload_config()  # validates against SkyPilot's config schema
        value = skypilot_config.get_effective_region_config(
            cloud=request["cloud"], region=request["region"], keys=tuple(request["keys"]), default_value=None
        )
        return {"ok": True, "value": value}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def main() -> None:
    import sky

    request = json.loads(sys.argv[1])
    if "config" in request:
        print(json.dumps(read_config(request)))
        return
    results = {}
    for path in request["files"]:
        try:
            with open(path, encoding="utf-8") as handle:
                config = yaml.safe_load(handle)
            if request.get("env_overrides") or request.get("secrets_overrides"):
                task = sky.Task.from_yaml_config(
                    config,
                    env_overrides=list(request.get("env_overrides", {}).items()),
                    secrets_overrides=list(request.get("secrets_overrides", {}).items()),
                )
            else:
                task = sky.Task.from_yaml(path)
            results[path] = {"ok": True, "task": describe(task)}
        except Exception as exc:  # SkyPilot's own validation errors
            results[path] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
