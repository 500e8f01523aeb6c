"""`system prune`: everything unused at once, and what a crashed write left in the store.

A service like the others: the CLI's `system prune` calls it; the dashboard and the Docker API prune
one kind at a time (their image prune reclaims the leftovers too, through images.prune).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import EngineError
from engine.models import ContainerState
from engine.services import containers, images, lifecycle, networks
from engine.services import volumes as volume_service


@dataclass(frozen=True)
class PruneResult:
    containers: list[str]
    networks: list[str]
    images: list[dict[str, str]]
    volumes: list[str]
    reclaimed: int


def prune(*, all: bool = False, volumes: bool = False) -> PruneResult:
    """Remove stopped containers, unused networks, dangling images (all unused ones with all=True),
    unused anonymous volumes when asked, and what a crashed write left in the store."""
    removed: list[str] = []
    for container in containers.list_containers(all=True):
        try:
            container = lifecycle.refresh(container)
            if container.state in (ContainerState.EXITED, ContainerState.CREATED, ContainerState.DEAD):
                lifecycle.remove(container.id)
                removed.append(container.id)
        except EngineError:
            continue  # started or removed meanwhile
    nets = networks.prune()
    pruned = images.prune(all=all)  # includes the leftovers
    vols = volume_service.prune() if volumes else None
    return PruneResult(
        containers=removed,
        networks=nets,
        images=pruned.deleted,
        volumes=vols.removed if vols else [],
        reclaimed=pruned.reclaimed + (vols.reclaimed if vols else 0),
    )
