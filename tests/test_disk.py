"""Room for the download (issue #14): refused before the first byte when the weights do not fit the disk."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from entrypoint import disk
from entrypoint.errors import NoDiskSpaceError
from entrypoint.units import GIB
from tests.support.planning import model_info


class Disk:
    """os.statvfs of a disk with `free` bytes available."""

    def __init__(self, free: int) -> None:
        self.f_bavail, self.f_frsize = free // 4096, 4096


@pytest.fixture
def hub_model(models):
    model = model_info(str(models("Qwen2.5-7B-Instruct")))  # 15.2 GB of BF16 weights
    return replace(model, name="Qwen/Qwen2.5-7B-Instruct", location="hub")


def test_weights_larger_than_the_free_space_are_refused_with_the_numbers(hub_model, tmp_path, monkeypatch):
    monkeypatch.setattr(disk.os, "statvfs", lambda path: Disk(10 * GIB))
    with pytest.raises(NoDiskSpaceError) as caught:
        disk.check_room(hub_model, {"HF_HOME": str(tmp_path / "hf")})
    message = caught.value.message
    assert "Qwen/Qwen2.5-7B-Instruct needs 14.2 GiB more for its weights (0.0 GiB already cached)" in message
    assert f"but {tmp_path} has 10.0 GiB free" in message  # the nearest folder that exists: the cache's disk
    assert "disk_size in the SkyPilot YAML" in caught.value.hint
    assert NoDiskSpaceError.exit_code == 36


def test_what_is_cached_already_is_not_needed_again(hub_model, tmp_path, monkeypatch):
    blobs = tmp_path / "hf" / "hub" / "models--Qwen--Qwen2.5-7B-Instruct" / "blobs"
    blobs.mkdir(parents=True)
    with open(blobs / "partial.incomplete", "wb") as handle:
        handle.truncate(8 * GIB)  # sparse: a download cut short
    monkeypatch.setattr(disk.os, "statvfs", lambda path: Disk(10 * GIB))
    disk.check_room(hub_model, {"HF_HOME": str(tmp_path / "hf")})  # 6.2 GiB to go, 10 free


def test_a_local_folder_or_the_offline_cache_downloads_nothing(hub_model, monkeypatch):
    monkeypatch.setattr(disk.os, "statvfs", lambda path: Disk(0))
    for location in ("local folder", "hub cache (offline)"):
        disk.check_room(replace(hub_model, location=location), {})


def test_the_real_disk_is_asked(hub_model, tmp_path):
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    if free > hub_model.weights.checkpoint_bytes + disk.HEADROOM_BYTES:
        disk.check_room(hub_model, {"HF_HOME": str(tmp_path)})
    else:
        with pytest.raises(NoDiskSpaceError):
            disk.check_room(hub_model, {"HF_HOME": str(tmp_path)})
