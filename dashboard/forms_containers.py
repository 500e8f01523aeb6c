"""The Run container form: the CLI's options in groups, parsed by the engine's own parsers.

Every field is parsed by engine.services.options (the same parsers as `berth run`), so the form and the
CLI accept exactly the same syntax and say the same things about mistakes. The form never decides
who may ask for what: `spec()` describes the request in the keys dashboard/policy.py reads, and the
view calls policy.check with it. Admin-only fields are hidden from other roles in the template but
still parsed here, so a hand-made POST is refused by the policy, not silently ignored.

Over 400 lines because RunForm mirrors the options of `berth run` (26 fields, most with their own
parser and error routing), and initial_from and cli_command are its inverse and its
preview, which change whenever a field does.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from typing import Any

from django import forms

from dashboard import forms_health
from engine.errors import EngineError, ImageNotFound, InvalidArgument
from engine.services import options as opts

RESTART_CHOICES = [(name, name) for name in opts.RESTART_POLICIES]
# The predefined networks; user networks are added per form (see RunForm.__init__).
NETWORK_CHOICES = [
    ("bridge", "bridge (default)"),
    ("none", "none (no network)"),
    ("host", "host (admins only)"),
]
DEFAULT_NETWORKS = ("", "default", "bridge")  # Docker accepts "default" for the bridge network
MAX_PUBLISH = 100
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")

# Which field an engine message is about, by the words in it (first match wins).
_ERROR_FIELDS: tuple[tuple[str, str], ...] = (
    ("container name", "name"),
    ("no such image", "image"),
    ("reference", "image"),
    ("bind source", "binds"),
    ("tmpfs", "tmpfs"),
    ("volume", "volumes"),
    ("mount", "volumes"),
    ("memory", "memory"),
    ("pids", "pids_limit"),
    ("cpus", "cpus"),
    ("restart", "restart"),
    ("workdir", "workdir"),
    ("working dir", "workdir"),
    ("capabilit", "cap_add"),
    ("alias", "network_aliases"),
    ("publish", "publish"),
    ("host port", "publish"),
    ("container port", "publish"),
    ("invalid port", "publish"),
    ("network", "network"),
    ("user", "user"),
    ("healthcheck", "health_cmd"),
)


def _lines(value: str) -> list[str]:
    return [line.strip() for line in (value or "").splitlines() if line.strip()]


def _words(value: str) -> list[str]:
    return [w for w in re.split(r"[\s,]+", value or "") if w]


def _is_default_network(value: str | None) -> bool:
    return (value or "").strip() in DEFAULT_NETWORKS


class RunForm(forms_health.HealthFields):  # the "Health check" group's fields come from there
    # essentials
    image = forms.CharField(
        max_length=512,
        help_text="A local image, e.g. busybox or busybox:latest.",
        widget=forms.TextInput(attrs={"list": "image-names", "autocomplete": "off", "spellcheck": "false"}),
    )
    name = forms.CharField(max_length=255, required=False, help_text="Leave empty for a generated name.")
    command = forms.CharField(
        max_length=4096, required=False, help_text="Overrides the image's command; quoted like a shell."
    )
    # environment
    env = forms.CharField(
        label="Environment variables",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="KEY=value, one per line.",
    )
    labels = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="key=value, one per line."
    )
    workdir = forms.CharField(label="Working directory", max_length=4096, required=False)
    user = forms.CharField(max_length=255, required=False, help_text="user, uid or uid:gid")
    # storage
    volumes = forms.CharField(
        label="Volumes",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="volume:/path[:ro] or /path (anonymous), one per line.",
    )
    binds = forms.CharField(
        label="Bind mounts (host paths)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="/host/path:/path[:ro], one per line.",
    )
    tmpfs = forms.CharField(
        label="tmpfs mounts",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="/path[:size=64m,mode=1777], one per line.",
    )
    # restart policy
    restart = forms.ChoiceField(label="Restart policy", choices=RESTART_CHOICES, initial="no")
    restart_retries = forms.IntegerField(required=False, min_value=0, max_value=1000, label="Maximum retries")
    auto_remove = forms.BooleanField(required=False, label="Remove when it exits (--rm)")
    # limits
    memory = forms.CharField(max_length=32, required=False, initial="512m", help_text="e.g. 256m, 1g")
    cpus = forms.CharField(label="CPUs", max_length=16, required=False, help_text="e.g. 0.5, 2")
    pids_limit = forms.IntegerField(
        label="PIDs limit", required=False, min_value=-1, help_text="Default 2048; -1 for unlimited."
    )
    init = forms.BooleanField(required=False, label="Run an init process (--init)")
    # network and ports
    network = forms.ChoiceField(choices=NETWORK_CHOICES, initial="bridge")
    publish = forms.CharField(
        label="Published ports",
        required=False,
        max_length=4096,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        help_text="[IP:][HOST_PORT:]PORT[/udp], one per line or comma separated, e.g. 8080:80",
    )
    publish_all = forms.BooleanField(required=False, label="Publish all exposed ports (-P)")
    network_aliases = forms.CharField(
        label="Network aliases",
        max_length=1024,
        required=False,
        help_text="Extra names on a user network, e.g. db cache",
    )
    hostname = forms.CharField(max_length=63, required=False)
    # security (admins)
    privileged = forms.BooleanField(label="Privileged (turns isolation off)", required=False)
    cap_add = forms.CharField(
        label="Add capabilities", max_length=1024, required=False, help_text="e.g. NET_ADMIN SYS_TIME"
    )
    cap_drop = forms.CharField(
        label="Drop capabilities", max_length=1024, required=False, help_text="e.g. CHOWN, or ALL"
    )
    read_only = forms.BooleanField(required=False, label="Read-only root filesystem")

    def __init__(
        self, *args: Any, networks: tuple[str, ...] = (), show_host: bool = True, **kwargs: Any
    ) -> None:
        """`networks`: the user networks to offer; `show_host`: list host in the menu (admins).

        host is always a valid choice, so a hand-made POST is refused by the policy, not the form.
        """
        data = args[0] if args else kwargs.get("data")
        if data is not None and data.get("network") == "default":
            data = data.copy()
            data["network"] = "bridge"
            args = (data, *args[1:]) if args else args
            kwargs = {**kwargs, "data": data} if "data" in kwargs else kwargs
        super().__init__(*args, **kwargs)
        choices = [
            *NETWORK_CHOICES,
            *((name, name) for name in networks if name not in ("bridge", "none", "host")),
        ]
        network = self.fields["network"]
        assert isinstance(network, forms.ChoiceField)
        network.choices = choices
        network.widget.choices = [c for c in choices if show_host or c[0] != "host"]

    def add_error(self, field: str | None, error: Any) -> None:
        """Record the error and mark the input invalid for assistive technology and the CSS."""
        super().add_error(field, error)
        for name in self.errors:
            if name in self.fields:
                self.fields[name].widget.attrs["aria-invalid"] = "true"
                help_id = f" id_{name}_helptext" if self.fields[name].help_text else ""
                self.fields[name].widget.attrs["aria-describedby"] = f"id_{name}-error{help_id}"

    # -- field parsing (the engine's parsers; their messages become field errors) -----------------

    def _parse(self, parser: Any, value: Any) -> Any:
        try:
            return parser(value)
        except InvalidArgument as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_image(self) -> str:
        value = self.cleaned_data["image"].strip()
        if not value or any(c.isspace() for c in value):
            raise forms.ValidationError("give one image reference, without spaces")
        return value

    def clean_name(self) -> str:
        value = self.cleaned_data["name"].strip()
        return self._parse(opts.validate_name, value) if value else ""

    def clean_command(self) -> tuple[str, ...] | None:
        value = self.cleaned_data["command"].strip()
        if not value:
            return None
        try:
            return tuple(shlex.split(value))
        except ValueError as exc:
            raise forms.ValidationError(f"cannot split the command: {exc}") from None

    def _pairs(self, field: str) -> list[tuple[str, str]]:
        pairs = []
        for line in _lines(self.cleaned_data[field]):
            key, sep, value = line.partition("=")
            if not _KEY.match(key):
                raise forms.ValidationError(f"invalid name {key!r} in {line!r}: use KEY=value")
            pairs.append((key, value if sep else ""))
        return pairs

    def clean_env(self) -> tuple[str, ...]:
        return tuple(f"{k}={v}" for k, v in self._pairs("env"))

    def clean_labels(self) -> dict[str, str]:
        return dict(self._pairs("labels"))

    def clean_volumes(self) -> tuple[opts.MountRequest, ...]:
        # --mount syntax too: an anonymous read-only volume has no -v spelling (the Edit form needs one).
        return tuple(
            self._parse(opts.parse_mount if "target=" in line else opts.parse_volume, line)
            for line in _lines(self.cleaned_data["volumes"])
        )

    def clean_binds(self) -> tuple[opts.MountRequest, ...]:
        mounts = tuple(self._parse(opts.parse_volume, line) for line in _lines(self.cleaned_data["binds"]))
        for mount in mounts:
            if mount.kind != "bind":
                raise forms.ValidationError(
                    f"{mount.source or mount.destination}: not a host path; use Volumes"
                )
        return mounts

    def clean_tmpfs(self) -> tuple[opts.MountRequest, ...]:
        return tuple(self._parse(opts.parse_tmpfs, line) for line in _lines(self.cleaned_data["tmpfs"]))

    def clean_memory(self) -> int | None:
        value = self.cleaned_data["memory"].strip()
        return self._parse(lambda v: opts.parse_size(v, "memory limit"), value) if value else None

    def clean_cpus(self) -> float | None:
        value = self.cleaned_data["cpus"].strip()
        return self._parse(opts.parse_cpus, value) if value else None

    def clean_publish(self) -> tuple[str, ...]:
        specs = tuple(_words(self.cleaned_data["publish"]))
        if len(specs) > MAX_PUBLISH:
            raise forms.ValidationError(f"at most {MAX_PUBLISH} published ports")
        for spec in specs:
            self._parse(opts.check_publish, spec)
        return specs

    def clean_network_aliases(self) -> tuple[str, ...]:
        return tuple(_words(self.cleaned_data["network_aliases"]))

    def clean_cap_add(self) -> tuple[str, ...]:
        return tuple(_words(self.cleaned_data["cap_add"]))

    def clean_cap_drop(self) -> tuple[str, ...]:
        return tuple(_words(self.cleaned_data["cap_drop"]))

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data  # what Form.clean returns (typed as optional by the stubs)
        restart = data.get("restart") or "no"
        retries = data.get("restart_retries")
        if retries and restart != "on-failure":
            self.add_error("restart_retries", "only the on-failure policy takes a retry count")
        elif restart:
            spec = f"{restart}:{retries}" if retries else restart
            try:
                data["restart_policy"] = opts.parse_restart(spec)
            except InvalidArgument as exc:
                self.add_error("restart", str(exc))
        if data.get("auto_remove") and restart != "no":
            self.add_error("auto_remove", "--rm and a restart policy cannot be used together")
        return data

    # -- what the view needs -------------------------------------------------------------------

    def to_options(self, base: opts.ContainerOptions | None = None) -> opts.ContainerOptions:
        """The ContainerOptions for containers.create (call after is_valid()).

        With `base` (an edit or a duplicate), options the form has no field for (entrypoint, DNS,
        log limits, …) are kept from it.
        """
        d = self.cleaned_data
        values = dict(
            image=d["image"],
            name=d["name"] or None,
            command=d["command"],
            env=d["env"],
            labels=d["labels"],
            workdir=d["workdir"].strip() or None,
            user=d["user"].strip() or None,
            hostname=d["hostname"].strip() or None,
            mounts=(*d["volumes"], *d["binds"], *d["tmpfs"]),
            restart=d.get("restart_policy") or opts.RestartPolicy(),
            auto_remove=d["auto_remove"],
            memory=d["memory"],
            cpus=d["cpus"],
            pids_limit=d["pids_limit"],
            init=d["init"],
            network=d["network"],
            network_aliases=d["network_aliases"],
            publish=d["publish"],
            publish_all=d["publish_all"],
            privileged=d["privileged"],
            cap_add=d["cap_add"],
            cap_drop=d["cap_drop"],
            read_only=d["read_only"],
            **self.health_values(base),
        )
        if base is not None:
            return dataclasses.replace(base, **values)
        return opts.ContainerOptions(**values)

    def spec(self) -> dict[str, Any]:
        """The request in policy.check's keys (call after is_valid())."""
        d = self.cleaned_data
        mounts = [*d["volumes"], *d["binds"], *d["tmpfs"]]
        return {
            "binds": [f"{m.source}:{m.destination}" for m in mounts if m.kind == "bind"],
            "mounts": [{"type": m.kind, "source": m.source, "target": m.destination} for m in mounts],
            "privileged": d["privileged"],
            "cap_add": list(d["cap_add"]),
            "network": d["network"],
        }

    def refuse(self, exc: EngineError) -> None:
        """Show a policy refusal next to the field that asked for the admin-only thing."""
        d = self.cleaned_data
        if any(m.kind == "bind" for m in d.get("volumes", ())):
            self.add_error("volumes", f"{exc} (a host path here is a bind mount)")
        elif d.get("binds"):
            self.add_error("binds", str(exc))
        elif d.get("privileged"):
            self.add_error("privileged", str(exc))
        elif d.get("cap_add"):
            self.add_error("cap_add", str(exc))
        elif d.get("network") == "host":
            self.add_error("network", str(exc))
        else:
            self.add_error(None, str(exc))

    def engine_error(self, exc: EngineError) -> None:
        """Put an error from containers.create next to the field it is about (else above the form)."""
        if isinstance(exc, ImageNotFound):
            self.add_error("image", str(exc))
            return
        text = str(exc).lower()
        for words, field in _ERROR_FIELDS:
            if words in text and field in self.fields:
                self.add_error(field, str(exc))
                return
        self.add_error(None, str(exc))


def initial_from(options: opts.ContainerOptions) -> dict[str, Any]:
    """RunForm's initial data describing `options` (the Edit and Duplicate forms start from it)."""

    def volume(m: opts.MountRequest) -> str:
        if m.kind == "volume" and not m.source and m.read_only:
            return f"type=volume,target={m.destination},readonly"
        return (f"{m.source}:" if m.source else "") + m.destination + (":ro" if m.read_only else "")

    def tmpfs(m: opts.MountRequest) -> str:
        flags = [k + (f"={v}" if v else "") for k, v in m.options] + (["ro"] if m.read_only else [])
        return m.destination + (":" + ",".join(flags) if flags else "")

    mounts = options.mounts
    return {
        "image": options.image,
        "name": options.name or "",
        "command": shlex.join(options.command) if options.command is not None else "",
        "env": "\n".join(options.env),
        "labels": "\n".join(f"{k}={v}" for k, v in options.labels.items()),
        "workdir": options.workdir or "",
        "user": options.user or "",
        "volumes": "\n".join(volume(m) for m in mounts if m.kind == "volume"),
        "binds": "\n".join(volume(m) for m in mounts if m.kind == "bind"),
        "tmpfs": "\n".join(tmpfs(m) for m in mounts if m.kind == "tmpfs"),
        "restart": options.restart.name,
        "restart_retries": options.restart.maximum_retry_count or None,
        "auto_remove": options.auto_remove,
        "memory": _size_text(options.memory),
        "cpus": f"{options.cpus:g}" if options.cpus else "",
        "pids_limit": options.pids_limit,
        "init": options.init,
        "network": "bridge" if _is_default_network(options.network) else options.network,
        "publish": "\n".join(options.publish),
        "publish_all": options.publish_all,
        "network_aliases": " ".join(options.network_aliases),
        "hostname": options.hostname or "",
        "privileged": options.privileged,
        "cap_add": " ".join(options.cap_add),
        "cap_drop": " ".join(options.cap_drop),
        "read_only": options.read_only,
        **forms_health.initial(options),
    }


def _size_text(size: int | None) -> str:
    """512m for 536870912: the largest binary unit that divides the size exactly."""
    if not size:
        return ""
    for unit, factor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def cli_command(data: Any) -> str:
    """The `berth run` command line equivalent to the (raw, possibly invalid) form data."""
    get = data.get
    argv = ["berth", "run", "-d"]
    if (get("name") or "").strip():
        argv += ["--name", get("name").strip()]
    for line in _lines(get("env") or ""):
        argv += ["-e", line]
    for line in _lines(get("labels") or ""):
        argv += ["--label", line]
    for key, flag in (("workdir", "-w"), ("user", "-u"), ("hostname", "-h")):
        if (get(key) or "").strip():
            argv += [flag, get(key).strip()]
    for line in _lines(get("volumes") or "") + _lines(get("binds") or ""):
        argv += ["--mount" if "target=" in line else "-v", line]
    for line in _lines(get("tmpfs") or ""):
        argv += ["--tmpfs", line]
    restart = get("restart") or "no"
    if restart != "no":
        retries = (get("restart_retries") or "").strip()
        argv += ["--restart", f"{restart}:{retries}" if retries and restart == "on-failure" else restart]
    if get("auto_remove"):
        argv.append("--rm")
    for key, flag in (("memory", "--memory"), ("cpus", "--cpus"), ("pids_limit", "--pids-limit")):
        if (get(key) or "").strip():
            argv += [flag, get(key).strip()]
    if get("init"):
        argv.append("--init")
    if not _is_default_network(get("network")):
        argv += ["--network", get("network").strip()]
    for spec in _words(get("publish") or ""):
        argv += ["-p", spec]
    if get("publish_all"):
        argv.append("-P")
    for alias in _words(get("network_aliases") or ""):
        argv += ["--network-alias", alias]
    if get("privileged"):
        argv.append("--privileged")
    for cap in _words(get("cap_add") or ""):
        argv += ["--cap-add", cap]
    for cap in _words(get("cap_drop") or ""):
        argv += ["--cap-drop", cap]
    if get("read_only"):
        argv.append("--read-only")
    argv += forms_health.cli_args(get)
    argv.append((get("image") or "").strip() or "IMAGE")
    command = (get("command") or "").strip()
    line = shlex.join(argv)
    return f"{line} {command}" if command else line
