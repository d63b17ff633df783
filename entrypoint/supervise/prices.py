"""Typical spot prices per GPU: the cost metrics' fallback when GPU_HOURLY_USD is not set (pure data).

A cost is only as good as its price. GPU_HOURLY_USD (what you actually pay) always wins; when this table is
used instead, the supervisor says so at start-up and its price metric carries the source, so nobody takes
an estimate for a bill. Each figure is the spot price of the GPU alone in GCP us-central1 (the VM's CPU
and memory come on top: about 12% for an H100), from SkyPilot's catalog, which `sky show-gpus` reads:
skypilot-org/skypilot-catalog, catalogs/v7/gcp/vms.csv at commit 017e2502, rows with an empty
InstanceType and AcceleratorCount 1 (H200 is sold in eights: its 8-GPU price / 8). GPUs GCP does not
sell, or sells without a spot price in that region, have no row. To update: read the same rows again and
change SOURCE with them.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE = "typical spot price (GCP us-central1, GPU only, SkyPilot catalog 017e2502)"

TYPICAL_SPOT_USD_PER_GPU_HOUR = {
    "A100": 1.1472,
    "A100-80GB": 1.5712,
    "H100": 2.253,
    "H200": 3.7247,  # 29.7976 for 8
    "L4": 0.2231,
}


@dataclass(frozen=True)
class GpuPrice:
    usd_per_gpu_hour: float
    source: str  # "GPU_HOURLY_USD", or SOURCE


def gpu_price(configured_usd: float | None, catalog_name: str | None) -> GpuPrice | None:
    """The price the cost metrics use: the setting, else the table's row for this GPU (by its catalogue
    name, `Plan.gpu_catalog_name`), else none."""
    if configured_usd is not None:
        return GpuPrice(configured_usd, "GPU_HOURLY_USD")
    typical = TYPICAL_SPOT_USD_PER_GPU_HOUR.get(catalog_name) if catalog_name else None
    return GpuPrice(typical, SOURCE) if typical is not None else None
