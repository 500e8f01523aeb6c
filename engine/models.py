"""Records of what users declared and what the engine last observed.

The disk (content store, runc state, conmon exit files) is the truth about running things; these
rows are reconciled with it by the services. Only services save these models.

Over 400 lines because every model lives here, one Django app's models module, each with its own docstring.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class Layer(models.Model):
    """An unpacked filesystem layer, stored once per chain ID however many images share it."""

    chain_id = models.CharField(max_length=71, primary_key=True)
    diff_id = models.CharField(max_length=71, db_index=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    blob_digest = models.CharField(max_length=71, help_text="digest of the (possibly compressed) blob")
    blob_size = models.BigIntegerField(default=0)
    media_type = models.CharField(max_length=120)
    size = models.BigIntegerField(default=0, help_text="bytes of file content once unpacked")
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.chain_id[7:19]


class Image(models.Model):
    """An image: a config blob plus an ordered list of layers. The ID is the config digest."""

    id = models.CharField(max_length=71, primary_key=True)
    config = models.JSONField(help_text="the parsed OCI image config")
    config_size = models.BigIntegerField(default=0)
    architecture = models.CharField(max_length=32, default="amd64")
    os = models.CharField(max_length=32, default="linux")
    created = models.DateTimeField(null=True, blank=True, help_text="when the image was built")
    size = models.BigIntegerField(default=0)
    layers = models.ManyToManyField(Layer, through="ImageLayer", related_name="images")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    loaded = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-loaded"]

    def __str__(self) -> str:
        return self.short_id

    @property
    def short_id(self) -> str:
        return self.id[7:19]


class ImageLayer(models.Model):
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="image_layers")
    layer = models.ForeignKey(Layer, on_delete=models.PROTECT, related_name="image_layers")
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["image", "position"], name="image_layer_position")]


class ImageTag(models.Model):
    """A normalised reference such as docker.io/library/busybox:latest pointing at one image."""

    name = models.CharField(max_length=512, unique=True)
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="tags")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RepoDigest(models.Model):
    """repository@sha256:… of a manifest the image was pulled or loaded with."""

    name = models.CharField(max_length=600, unique=True)
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="repo_digests")

    def __str__(self) -> str:
        return self.name


class Volume(models.Model):
    name = models.CharField(max_length=255, unique=True)
    driver = models.CharField(max_length=32, default="local")
    labels = models.JSONField(default=dict, blank=True)
    options = models.JSONField(default=dict, blank=True)
    anonymous = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Network(models.Model):
    """A network containers join: Docker's predefined bridge, host and none, or a user bridge network.

    `bridge` is the kernel device (empty for host and none). Addresses are leased in Endpoint rows.
    """

    id = models.CharField(max_length=64, primary_key=True)
    name = models.CharField(max_length=255, unique=True)
    driver = models.CharField(max_length=16, default="bridge")
    bridge = models.CharField(max_length=15, blank=True)
    subnet = models.CharField(max_length=43, blank=True)
    gateway = models.CharField(max_length=39, blank=True)
    ip_range = models.CharField(max_length=43, blank=True)
    internal = models.BooleanField(default=False)
    predefined = models.BooleanField(default=False, help_text="bridge, host and none: never removed")
    labels = models.JSONField(default=dict, blank=True)
    options = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def has_names(self) -> bool:
        """User bridge networks resolve container names; Docker's default bridge does not."""
        return self.driver == "bridge" and not self.predefined


class ContainerState(models.TextChoices):
    CREATED = "created"  # runc container exists (or will), process not started yet
    RUNNING = "running"  # the process is alive
    PAUSED = "paused"  # frozen by the cgroup freezer
    RESTARTING = "restarting"  # exited and about to be started again by its restart policy
    EXITED = "exited"  # the process ended; the container layer is kept
    DEAD = "dead"  # removal or clean-up failed half-way; only rm -f helps
    REMOVING = "removing"  # rm in progress


class Container(models.Model):
    id = models.CharField(max_length=64, primary_key=True)
    name = models.CharField(max_length=255, unique=True)
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="containers")
    image_ref = models.CharField(max_length=512, help_text="the image as the user named it")
    config = models.JSONField(default=dict, help_text="Docker's Config: Cmd, Env, Entrypoint, …")
    host_config = models.JSONField(default=dict, help_text="Docker's HostConfig: limits, restart policy, …")
    labels = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=ContainerState.choices, default=ContainerState.CREATED)
    pid = models.IntegerField(default=0)
    conmon_pid = models.IntegerField(default=0)
    exit_code = models.IntegerField(default=0)
    oom_killed = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    restart_count = models.IntegerField(default=0)
    stopped_by_user = models.BooleanField(default=False, help_text="an explicit stop or kill: no restart")
    created_by = models.CharField(max_length=150, blank=True)
    ports = models.JSONField(
        default=list, blank=True, help_text="published ports in force while running (host ports resolved)"
    )
    health = models.JSONField(
        default=dict,
        blank=True,
        help_text="Docker's State.Health: Status, FailingStreak, Log (last 5 checks)",
    )

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.name

    @property
    def short_id(self) -> str:
        return self.id[:12]


class Mount(models.Model):
    class Kind(models.TextChoices):
        VOLUME = "volume"
        BIND = "bind"
        TMPFS = "tmpfs"

    container = models.ForeignKey(Container, on_delete=models.CASCADE, related_name="mounts")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    source = models.CharField(max_length=4096, blank=True)
    destination = models.CharField(max_length=4096)
    volume = models.ForeignKey(Volume, null=True, blank=True, on_delete=models.PROTECT, related_name="mounts")
    read_only = models.BooleanField(default=False)
    options = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"{self.source or self.kind}:{self.destination}"


class Endpoint(models.Model):
    """A container's membership of a network: its leased address, MAC and aliases.

    The lease lives from create (or connect) to removal (or disconnect); `(network, ip)` is unique,
    which is what makes concurrent allocation race-free.
    """

    network = models.ForeignKey(Network, on_delete=models.PROTECT, related_name="endpoints")
    container = models.ForeignKey(Container, on_delete=models.CASCADE, related_name="endpoints")
    ip = models.GenericIPAddressField(protocol="IPv4")
    mac = models.CharField(max_length=17)
    aliases = models.JSONField(default=list, blank=True)
    ifname = models.CharField(
        max_length=15, blank=True, help_text="its interface in the container: eth0, eth1, …"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]
        constraints = [
            models.UniqueConstraint(fields=["network", "ip"], name="endpoint_unique_ip"),
            models.UniqueConstraint(fields=["network", "container"], name="endpoint_unique_container"),
        ]

    def __str__(self) -> str:
        return f"{self.container_id[:12]}@{self.network_id[:12]} {self.ip}"


class ContainerRevision(models.Model):
    """One numbered specification a container ran with, kept across the recreates that replace its row.

    Revisions are not tied to the Container row by a foreign key, because an edit or a rollback
    replaces that row. A `lineage` (a UUID) groups the revisions of one container through its
    recreates; the container's current lineage is the one whose latest revision has
    `container_id` equal to its ID (services/revisions.py). A container removed and then created
    anew under the same name starts a new lineage, so it never inherits a stranger's history.
    """

    lineage = models.UUIDField(db_index=True)
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=255, db_index=True, help_text="the container's name at the time")
    container_id = models.CharField(
        max_length=64, db_index=True, help_text="the container created from this spec"
    )
    spec = models.JSONField(help_text="ContainerOptions as a dict: everything needed to recreate")
    action = models.CharField(max_length=16, default="create", help_text="create, edit or rollback")
    restored = models.PositiveIntegerField(
        null=True, blank=True, help_text="the revision a rollback restored"
    )
    changes = models.JSONField(default=list, blank=True, help_text="[field, old, new] against the previous")
    actor = models.CharField(max_length=150, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["lineage", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["lineage", "number"], name="container_revision_number"),
        ]

    def __str__(self) -> str:
        return f"{self.name} #{self.number}"


class ExecSession(models.Model):
    id = models.CharField(max_length=64, primary_key=True)
    container = models.ForeignKey(Container, on_delete=models.CASCADE, related_name="exec_sessions")
    command = models.JSONField(default=list)
    user = models.CharField(max_length=64, blank=True)
    tty = models.BooleanField(default=False)
    pid = models.IntegerField(default=0)
    exit_code = models.IntegerField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-started_at"]


class Event(models.Model):
    """The audit log: who did what to which object, when, with what result."""

    time = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150, help_text="user name, or cli:<unix user>, or engine")
    object_type = models.CharField(max_length=16, db_index=True)
    object_id = models.CharField(max_length=128, blank=True)
    object_name = models.CharField(max_length=512, blank=True)
    action = models.CharField(max_length=32, db_index=True)
    result = models.CharField(max_length=8, default="ok")
    message = models.TextField(blank=True)
    attributes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-time", "-id"]

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.object_type} {self.object_name or self.object_id}"


class JobState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Job(models.Model):
    """Long work (load, import, pull, build, prune) run in a worker, with progress for the browser."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    kind = models.CharField(max_length=16)
    title = models.CharField(max_length=512, blank=True)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    progress = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    pid = models.IntegerField(default=0)
    created_by = models.CharField(max_length=150, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]


class AlertRule(models.Model):
    """What an admin wants to be told about: a condition, the containers it covers, where to send it."""

    class Kind(models.TextChoices):
        EXIT = "exit", "exits with a non-zero code or stops unexpectedly"
        OOM = "oom", "is OOM-killed"
        UNHEALTHY = "unhealthy", "becomes unhealthy"
        RESTART_LOOP = "restart_loop", "restarts more than N times in M minutes"
        CPU = "cpu", "stays above X % CPU for M minutes"
        MEMORY = "memory", "stays above X % memory for M minutes"
        DISK = "disk", "free disk under BERTH_ROOT below X %"

    class Scope(models.TextChoices):
        ALL = "all", "all containers"
        LABEL = "label", "containers with a label"
        NAME = "name", "one container, by name"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.ALL)
    scope_value = models.CharField(
        max_length=512, blank=True, help_text="key=value (label) or a container name"
    )
    threshold = models.FloatField(
        default=0, help_text="percent (cpu, memory, disk) or a count (restart_loop)"
    )
    minutes = models.PositiveIntegerField(
        default=5, help_text="how long (cpu, memory) or the window (restart_loop)"
    )
    notify_dashboard = models.BooleanField(default=True)
    email_to = models.CharField(max_length=1000, blank=True, help_text="comma-separated addresses")
    webhook_url = models.URLField(max_length=2000, blank=True)
    webhook_secret = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    created_by = models.CharField(max_length=150, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Alert(models.Model):
    """One firing of a rule for one subject (a container, or the host): opens once, resolves once."""

    class State(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    subject_type = models.CharField(max_length=16, default="container", help_text="container or host")
    subject_id = models.CharField(max_length=64, blank=True)
    subject_name = models.CharField(max_length=255, blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.OPEN, db_index=True)
    message = models.TextField(blank=True)
    opened = models.DateTimeField(default=timezone.now, db_index=True)
    resolved = models.DateTimeField(null=True, blank=True)
    seen = models.BooleanField(default=False, help_text="read in the dashboard (the bell counts unseen ones)")

    class Meta:
        ordering = ["-opened", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "subject_type", "subject_id"],
                condition=models.Q(state="open"),
                name="alert_open_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule.name}: {self.subject_name or self.subject_type} ({self.state})"


class AlertDelivery(models.Model):
    """An outgoing notification (webhook or e-mail) with its retries: the outbox the monitor drains."""

    class State(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=8, help_text="webhook or email")
    transition = models.CharField(max_length=8, help_text="open or resolve")
    target = models.CharField(max_length=2000)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    sent = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["next_attempt", "id"]


class MonitorState(models.Model):
    """Small named values the monitor keeps across restarts (e.g. the last event it evaluated)."""

    key = models.CharField(max_length=64, primary_key=True)
    value = models.JSONField(default=dict, blank=True)
