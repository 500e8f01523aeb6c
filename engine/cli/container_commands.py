"""CLI container commands that create, run and change the state of containers: run, create, start, stop,
restart, kill, pause, unpause, rm, rename, wait, exec, prune (and `container …` aliases).

The commands that only read a container (ps, inspect, top, stats, diff, logs, port) are in inspect_commands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from engine.cli import attach
from engine.cli.args import for_each, group, parse_labels, report_error
from engine.cli.thinformat import env_values
from engine.errors import CommandNotRunnable, ContainerNotFound, EngineError, InvalidArgument
from engine.models import Container, ContainerState
from engine.services import bulk, containers, execs, healthoptions, lifecycle, supervision
from engine.services import options as opts

LIFECYCLE_VERBS = ("start", "stop", "restart", "kill", "pause", "unpause", "rm", "rename", "wait")


def register(sub: argparse._SubParsersAction) -> None:
    container = group(sub, "container", "Manage containers")
    for parent in (sub, container):
        p = parent.add_parser("run", help="Create and start a container", add_help=False)
        _create_arguments(p)
        p.add_argument("-d", "--detach", action="store_true", help="run in the background and print the ID")
        p.set_defaults(handler=cmd_run)
        p = parent.add_parser("create", help="Create a container", add_help=False)
        _create_arguments(p)
        p.set_defaults(handler=cmd_create)

        p = parent.add_parser("start", help="Start containers")
        p.add_argument("containers", nargs="+")
        p.add_argument("-a", "--attach", action="store_true", help="attach output and wait for the exit")
        p.add_argument("-i", "--interactive", action="store_true")
        p.set_defaults(handler=cmd_start)
        for name, help_text in (("stop", "Stop containers"), ("restart", "Restart containers")):
            p = parent.add_parser(name, help=help_text)
            p.add_argument("containers", nargs="+")
            p.add_argument(
                "-t", "--time", "--timeout", type=int, dest="timeout", help="seconds before SIGKILL"
            )
            if name == "stop":
                p.add_argument("-s", "--signal")
            p.set_defaults(handler=cmd_stop if name == "stop" else cmd_restart)
        p = parent.add_parser("kill", help="Send a signal (KILL by default) to containers")
        p.add_argument("containers", nargs="+")
        p.add_argument("-s", "--signal", default="KILL")
        p.set_defaults(handler=cmd_kill)
        for name in ("pause", "unpause"):
            p = parent.add_parser(name, help=f"{name.capitalize()} containers")
            p.add_argument("containers", nargs="+")
            p.set_defaults(handler=cmd_pause if name == "pause" else cmd_unpause)
        p = parent.add_parser("rm", help="Remove containers")
        p.add_argument("containers", nargs="+")
        p.add_argument("-f", "--force", action="store_true", help="kill a running container first")
        p.add_argument("-v", "--volumes", action="store_true", help="remove anonymous volumes too")
        p.set_defaults(handler=cmd_rm)
        p = parent.add_parser("rename", help="Rename a container")
        p.add_argument("container")
        p.add_argument("new_name")
        p.set_defaults(handler=cmd_rename)
        p = parent.add_parser("wait", help="Wait for containers to stop and print their exit codes")
        p.add_argument("containers", nargs="+")
        p.set_defaults(handler=cmd_wait)
        p = parent.add_parser("exec", help="Run a command in a running container")
        p.add_argument("-i", "--interactive", action="store_true")
        p.add_argument("-t", "--tty", action="store_true")
        p.add_argument("-d", "--detach", action="store_true")
        p.add_argument("-e", "--env", action="append", default=[])
        p.add_argument("-u", "--user")
        p.add_argument("-w", "--workdir")
        p.add_argument("container")
        p.add_argument("command", nargs=argparse.REMAINDER)
        p.set_defaults(handler=cmd_exec)
    p = container.add_parser("prune", help="Remove all stopped containers")
    p.add_argument("-f", "--force", action="store_true")
    p.set_defaults(handler=cmd_prune)
    # No help=: argparse lists a sub-command given any help, even SUPPRESS (as "==SUPPRESS==").
    p = sub.add_parser("container-exited")  # conmon's exit command, not for users
    p.add_argument("container_id")
    p.set_defaults(handler=cmd_container_exited)


def _create_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--help", action="help", help="show this help message and exit")
    p.add_argument("--name")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("-e", "--env", action="append", default=[])
    p.add_argument("--env-file", action="append", default=[])
    p.add_argument("-w", "--workdir")
    p.add_argument("-u", "--user")
    p.add_argument("--entrypoint")
    p.add_argument("-l", "--label", action="append")
    p.add_argument("-h", "--hostname")
    p.add_argument("-v", "--volume", action="append", default=[])
    p.add_argument("--mount", action="append", default=[])
    p.add_argument("--tmpfs", action="append", default=[])
    p.add_argument("--restart", default="no")
    p.add_argument("-m", "--memory")
    p.add_argument("--memory-swap")
    p.add_argument("--cpus")
    p.add_argument("--pids-limit", type=int)
    p.add_argument("--read-only", action="store_true")
    p.add_argument("--cap-add", action="append", default=[])
    p.add_argument("--cap-drop", action="append", default=[])
    p.add_argument("--privileged", action="store_true")
    p.add_argument("--stop-signal")
    p.add_argument("--stop-timeout", type=int)
    p.add_argument("--init", action="store_true")
    p.add_argument("--network", "--net", default="bridge")
    p.add_argument("--ip", help="an IPv4 address on the network")
    p.add_argument("--mac-address")
    p.add_argument("--network-alias", "--net-alias", action="append", default=[])
    p.add_argument("--add-host", action="append", default=[], help="NAME:IP or NAME:host-gateway")
    p.add_argument("--dns", action="append", default=[])
    p.add_argument("--dns-search", action="append", default=[])
    p.add_argument("--expose", action="append", default=[])
    p.add_argument("-p", "--publish", action="append", default=[], help="[IP:][HOSTPORT:]PORT[/PROTO]")
    p.add_argument("-P", "--publish-all", action="store_true")
    p.add_argument("--log-opt", action="append", default=[])
    p.add_argument("--security-opt", action="append", default=[])
    p.add_argument("--health-cmd", help="command to run to check health")
    p.add_argument("--health-interval", help="time between checks (e.g. 30s, 1m30s)")
    p.add_argument("--health-timeout", help="longest time a check may take")
    p.add_argument("--health-start-period", help="time to start before failed checks count")
    p.add_argument("--health-start-interval", help="time between checks during the start period")
    p.add_argument("--health-retries", type=int, help="consecutive failures before unhealthy")
    p.add_argument("--health-on-failure", help="none, kill, restart or stop when unhealthy")
    p.add_argument("--no-healthcheck", action="store_true", help="disable the image's HEALTHCHECK")
    p.add_argument("image")
    p.add_argument("command", nargs=argparse.REMAINDER)


def options_from_args(args: argparse.Namespace) -> opts.ContainerOptions:
    env = []
    for path in args.env_file:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise InvalidArgument(f"cannot read env file {path}: {exc.strerror}") from exc
        env.extend(opts.parse_env_file(text, path))
    env += env_values(args.env)
    mounts = [opts.parse_volume(v) for v in args.volume]
    mounts += [opts.parse_mount(m) for m in args.mount]
    mounts += [opts.parse_tmpfs(t) for t in args.tmpfs]
    log = parse_labels(args.log_opt)
    nnp = True
    seccomp_unconfined = False
    for item in args.security_opt:
        if item in ("no-new-privileges:false", "no-new-privileges=false"):
            nnp = False
        elif item in ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"):
            nnp = True
        elif item in ("seccomp=unconfined", "seccomp:unconfined"):
            seccomp_unconfined = True
        else:
            raise InvalidArgument(f"unsupported --security-opt {item!r}")
    memory = opts.parse_size(args.memory, "memory") if args.memory else None
    swap = None
    if args.memory_swap:
        swap = -1 if args.memory_swap == "-1" else opts.parse_size(args.memory_swap, "memory-swap")
    return opts.ContainerOptions(
        image=args.image,
        name=args.name,
        command=tuple(args.command) if args.command else None,
        entrypoint=(args.entrypoint,) if args.entrypoint is not None else None,
        env=tuple(env),
        workdir=args.workdir,
        user=args.user,
        labels=parse_labels(args.label),
        hostname=args.hostname,
        mounts=tuple(mounts),
        restart=opts.parse_restart(args.restart),
        memory=memory,
        memory_swap=swap,
        cpus=opts.parse_cpus(args.cpus) if args.cpus else None,
        pids_limit=args.pids_limit,
        read_only=args.read_only,
        cap_add=tuple(args.cap_add),
        cap_drop=tuple(args.cap_drop),
        privileged=args.privileged,
        stop_signal=args.stop_signal,
        stop_timeout=args.stop_timeout,
        init=args.init,
        network=args.network,
        ip=args.ip,
        mac_address=args.mac_address,
        network_aliases=tuple(args.network_alias),
        add_hosts=tuple(args.add_host),
        dns=tuple(args.dns),
        dns_search=tuple(args.dns_search),
        expose=tuple(args.expose),
        publish=tuple(args.publish),
        publish_all=args.publish_all,
        tty=args.tty,
        interactive=args.interactive,
        auto_remove=getattr(args, "rm", False),
        log_max_size=opts.parse_size(log["max-size"], "max-size") if "max-size" in log else None,
        log_max_file=int(log["max-file"]) if "max-file" in log else None,
        no_new_privileges=nnp,
        seccomp_unconfined=seccomp_unconfined,
        **healthoptions.from_flags(
            cmd=args.health_cmd,
            interval=args.health_interval,
            timeout=args.health_timeout,
            start_period=args.health_start_period,
            start_interval=args.health_start_interval,
            retries=args.health_retries,
            disabled=args.no_healthcheck,
            on_failure=args.health_on_failure,
        ),
    )


def cmd_create(args: argparse.Namespace) -> int:
    container = containers.create(options_from_args(args))
    sys.stdout.write(container.id + "\n")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    container = containers.create(options)
    if args.detach:
        try:
            lifecycle.start(container.id)
        except EngineError:
            _remove_after_failed_start(container, options)
            raise
        sys.stdout.write(container.id + "\n")
        return 0
    try:
        code = attach.run_attached(container, interactive=options.interactive, tty=options.tty)
    except EngineError as exc:
        _remove_after_failed_start(container, options)
        if isinstance(exc, CommandNotRunnable):
            report_error("run", exc)
            return exc.exit_status
        raise
    if options.auto_remove:
        _remove_quietly(container.id)
    return code


def _remove_after_failed_start(container: Container, options: opts.ContainerOptions) -> None:
    if options.auto_remove:
        _remove_quietly(container.id)


def _remove_quietly(container_id: str) -> None:
    try:
        lifecycle.remove(container_id, force=True, volumes=True)
    except ContainerNotFound:
        pass  # conmon's exit command removed it first


def cmd_start(args: argparse.Namespace) -> int:
    if args.attach:
        if len(args.containers) != 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        container = containers.resolve(args.containers[0])
        return attach.run_attached(
            container, interactive=args.interactive, tty=bool(container.config.get("Tty"))
        )
    return _all_at_once("start", args.containers, lambda ref: lifecycle.start(ref))


def cmd_stop(args: argparse.Namespace) -> int:
    return _all_at_once(
        "stop", args.containers, lambda ref: lifecycle.stop(ref, timeout=args.timeout, signal=args.signal)
    )


def cmd_restart(args: argparse.Namespace) -> int:
    return _all_at_once("restart", args.containers, lambda ref: lifecycle.restart(ref, timeout=args.timeout))


def cmd_kill(args: argparse.Namespace) -> int:
    return _all_at_once("kill", args.containers, lambda ref: lifecycle.kill(ref, signal=args.signal))


def cmd_pause(args: argparse.Namespace) -> int:
    return _all_at_once("pause", args.containers, lifecycle.pause)


def cmd_unpause(args: argparse.Namespace) -> int:
    return _all_at_once("unpause", args.containers, lifecycle.unpause)


def cmd_rm(args: argparse.Namespace) -> int:
    return _all_at_once(
        "rm", args.containers, lambda ref: lifecycle.remove(ref, force=args.force, volumes=args.volumes)
    )


def _all_at_once(command: str, refs: Sequence[str], action: Callable[[str], object]) -> int:
    """Run `action` on every ref concurrently (services/bulk.each), as docker does for stop, rm, kill…:
    print each ref as typed when it is done, one `Error:` line naming each that failed (recorded as an
    event); exit status 1 if any failed."""
    failed = False
    for ref, error in bulk.each(refs, action, name=command):
        if error is None:
            sys.stdout.write(ref + "\n")
            sys.stdout.flush()
            continue
        failed = True
        # Most messages name the container already ("no such container: web"); others get its name.
        named = error if ref in str(error) else EngineError(f"{ref}: {error}")
        report_error(command, named, object_type="container", object_name=ref)
    return 1 if failed else 0


def cmd_rename(args: argparse.Namespace) -> int:
    containers.rename(args.container, args.new_name)
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    return for_each(
        "wait", args.containers, lambda ref: sys.stdout.write(f"{lifecycle.wait(ref)}\n"), echo=False
    )


def cmd_prune(args: argparse.Namespace) -> int:
    from engine.cli.args import confirm

    if not confirm(
        "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?", args.force
    ):
        return 1
    removed = []
    for c in containers.list_containers(all=True):
        c = lifecycle.refresh(c)
        if c.state in (ContainerState.EXITED, ContainerState.CREATED, ContainerState.DEAD):
            try:
                lifecycle.remove(c.id)
                removed.append(c.id)
            except EngineError:
                continue
    if removed:
        sys.stdout.write("Deleted Containers:\n" + "".join(f"{i}\n" for i in removed) + "\n")
    sys.stdout.write("Total reclaimed space: 0B\n")
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    if not args.command:
        raise InvalidArgument("exec needs a command: berth exec CONTAINER COMMAND [ARG…]")
    request = execs.ExecRequest(
        command=tuple(args.command),
        tty=args.tty,
        interactive=args.interactive,
        env=tuple(args.env),
        user=args.user,
        workdir=args.workdir,
        detach=args.detach,
    )
    return execs.run_attached(args.container, request)


def cmd_container_exited(args: argparse.Namespace) -> int:
    supervision.handle_exit(args.container_id)
    return 0
