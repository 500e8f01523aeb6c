"""A container's stored Config and HostConfig, in Docker's shape, built from its create options (pure)."""

from __future__ import annotations

from typing import Any

from engine.net import etcfiles, ports
from engine.runtime import spec as runtime_spec
from engine.services import healthoptions
from engine.services import options as opts


def config(options: opts.ContainerOptions, image_config: dict[str, Any]) -> dict[str, Any]:
    """The stored Config: the image's defaults overridden by the options, as Docker merges them."""
    env = _merge_env(list(image_config.get("Env") or []), list(options.env))
    labels = {**(image_config.get("Labels") or {}), **options.labels}
    entrypoint = (
        list(options.entrypoint) if options.entrypoint is not None else image_config.get("Entrypoint")
    )
    if options.entrypoint is not None and options.command is None:
        cmd = None  # a new entrypoint resets the image's Cmd, as Docker does
    else:
        cmd = list(options.command) if options.command is not None else image_config.get("Cmd")
    if entrypoint == [""]:
        entrypoint = None
    stop_timeout = options.stop_timeout
    return {
        "Hostname": options.hostname or "",
        "User": options.user if options.user is not None else image_config.get("User", ""),
        "Env": env,
        "Cmd": cmd,
        "Entrypoint": entrypoint,
        "WorkingDir": options.workdir or image_config.get("WorkingDir") or "",
        "Labels": labels,
        "Image": options.image,
        "Tty": options.tty,
        "OpenStdin": options.interactive,
        "StdinOnce": options.interactive,
        "AttachStdin": options.interactive,
        "StopSignal": options.stop_signal or image_config.get("StopSignal") or "SIGTERM",
        "StopTimeout": stop_timeout if stop_timeout is not None else opts.DEFAULT_STOP_TIMEOUT,
        "Volumes": image_config.get("Volumes") or None,
        "ExposedPorts": _exposed(options, image_config) or None,
        **({"MacAddress": options.mac_address} if options.mac_address else {}),
        **healthoptions.config_entries(options, image_config.get("Healthcheck")),
        **({"Shell": image_config["Shell"]} if image_config.get("Shell") else {}),  # CMD-SHELL checks use it
    }


def _exposed(options: opts.ContainerOptions, image_config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    exposed = dict(image_config.get("ExposedPorts") or {})
    for spec in options.expose:
        exposed.update({key: {} for key in ports.parse_expose(spec)})
    for spec in options.publish:
        exposed.update({r.key: {} for r in ports.parse_publish(spec)})
    return exposed


def _merge_env(base: list[str], extra: list[str]) -> list[str]:
    merged: dict[str, str] = {}
    for item in base + extra:
        key, _, _ = item.partition("=")
        merged[key] = item
    return list(merged.values())


def host_config(options: opts.ContainerOptions, *, network_mode: str) -> dict[str, Any]:
    """The stored HostConfig; ``network_mode`` is the mode with a container reference resolved to its ID."""
    nano_cpus = int(options.cpus * 1e9) if options.cpus else 0
    return {
        "NetworkMode": network_mode,
        "PortBindings": ports.to_port_bindings(
            r for spec in options.publish for r in ports.parse_publish(spec)
        ),
        "PublishAllPorts": options.publish_all,
        "Dns": [etcfiles.parse_dns(d) for d in options.dns],
        "DnsSearch": [etcfiles.parse_dns_search(d) for d in options.dns_search],
        "ExtraHosts": list(options.add_hosts) or None,
        "RestartPolicy": {
            "Name": options.restart.name,
            "MaximumRetryCount": options.restart.maximum_retry_count,
        },
        "AutoRemove": options.auto_remove,
        "Memory": options.memory or 0,
        "MemorySwap": options.memory_swap or 0,
        "NanoCpus": nano_cpus,
        "PidsLimit": options.pids_limit
        if options.pids_limit is not None
        else runtime_spec.DEFAULT_PIDS_LIMIT,
        "ReadonlyRootfs": options.read_only,
        "CapAdd": [runtime_spec.normalize_cap(c) for c in options.cap_add] or None,
        "CapDrop": [runtime_spec.normalize_cap(c) for c in options.cap_drop] or None,
        "Privileged": options.privileged,
        "Init": options.init,
        "SecurityOpt": (["no-new-privileges:false"] if not options.no_new_privileges else [])
        + (["seccomp=unconfined"] if options.seccomp_unconfined else []),
        "LogConfig": {
            "Type": "k8s-file",
            "Config": {
                "max-size": str(options.log_max_size or opts.DEFAULT_LOG_MAX_SIZE),
                "max-file": str(options.log_max_file or opts.DEFAULT_LOG_MAX_FILE),
            },
        },
        "Binds": [
            f"{m.source}:{m.destination}{':ro' if m.read_only else ''}"
            for m in options.mounts
            if m.kind == "bind"
        ]
        or None,
        "Tmpfs": {
            m.destination: ",".join(k + (f"={v}" if v else "") for k, v in m.options)
            for m in options.mounts
            if m.kind == "tmpfs"
        }
        or None,
    }
