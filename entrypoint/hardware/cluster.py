"""Which node this is in a multi-node cluster, from what SkyPilot sets (pure).

SkyPilot runs the same command on every node of a `num_nodes: N` task and
tells each one SKYPILOT_NUM_NODES, SKYPILOT_NODE_RANK and SKYPILOT_NODE_IPS
(head first). The engines need the node count, this node's rank and the
head's address; everything else about the layout comes from the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import SettingError

if TYPE_CHECKING:  # pure: the settings module is the configuration edge
    from ..settings import Settings


@dataclass(frozen=True)
class Cluster:
    nodes: int = 1
    rank: int = 0
    head: str | None = None  # the rank-0 node's address; None on one node
    port: int = 29501

    @property
    def is_head(self) -> bool:
        return self.rank == 0

    @property
    def multi_node(self) -> bool:
        return self.nodes > 1


def from_settings(settings: Settings) -> Cluster:
    nodes, rank, ips = settings.skypilot_num_nodes, settings.skypilot_node_rank, settings.skypilot_node_ips
    if nodes == 1:
        return Cluster(port=settings.dist_port)
    if rank >= nodes:
        raise SettingError(
            f"SKYPILOT_NODE_RANK={rank} is not below SKYPILOT_NUM_NODES={nodes}",
            f"ranks run from 0 to {nodes - 1}; SkyPilot sets both, check the task's num_nodes",
        )
    if not ips or len(ips) < nodes:
        raise SettingError(
            f"SKYPILOT_NODE_IPS lists {len(ips or ())} address(es) for SKYPILOT_NUM_NODES={nodes}",
            "for example SKYPILOT_NODE_IPS=10.0.0.1\\n10.0.0.2 (one per node, head first)",
        )
    return Cluster(nodes=nodes, rank=rank, head=ips[0], port=settings.dist_port)
