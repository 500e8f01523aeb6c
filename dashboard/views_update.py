"""Dashboard page: Update limits (`berth update`), applied live to a container: memory, swap, CPUs, CPU
shares, PIDs and the restart policy. Only what differs from the stored HostConfig is sent to
engine.services.updates; a blank field means no limit.

URL name: `container_update`.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_http_methods

from dashboard import policy
from dashboard.views_containers import _perms
from engine import events
from engine.errors import EngineError, InvalidArgument
from engine.services import containers, updates
from engine.services import options as opts


class UpdateForm(forms.Form):
    """`berth update`: limits and restart policy, applied live; blank means no limit."""

    memory = forms.CharField(max_length=32, required=False, help_text="e.g. 256m, 1g; blank: no limit")
    memory_swap = forms.CharField(
        label="Memory + swap", max_length=32, required=False, help_text="-1 for unlimited swap"
    )
    cpus = forms.CharField(label="CPUs", max_length=16, required=False, help_text="e.g. 0.5; blank: no limit")
    cpu_shares = forms.IntegerField(
        label="CPU shares", required=False, min_value=0, help_text="relative weight"
    )
    pids_limit = forms.IntegerField(
        label="PIDs limit", required=False, min_value=-1, help_text="-1: unlimited"
    )
    restart = forms.ChoiceField(label="Restart policy", choices=[(n, n) for n in opts.RESTART_POLICIES])
    restart_retries = forms.IntegerField(label="Maximum retries", required=False, min_value=0, max_value=1000)

    def _parse(self, parser: Any, value: str) -> Any:
        try:
            return parser(value)
        except InvalidArgument as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_memory(self) -> int:
        value = self.cleaned_data["memory"].strip()
        return self._parse(lambda v: opts.parse_size(v, "memory limit"), value) if value else -1

    def clean_memory_swap(self) -> int:
        value = self.cleaned_data["memory_swap"].strip()
        if not value or value == "-1":
            return -1
        return self._parse(lambda v: opts.parse_size(v, "memory-swap limit"), value)

    def clean_cpus(self) -> int:
        value = self.cleaned_data["cpus"].strip()
        return int(self._parse(opts.parse_cpus, value) * 1e9) if value else 0

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        restart, retries = data.get("restart") or "no", data.get("restart_retries")
        if retries and restart != "on-failure":
            self.add_error("restart_retries", "only the on-failure policy takes a retry count")
        return data

    def changes(self, host: dict[str, Any]) -> updates.Changes:
        """Only what differs from the stored HostConfig (call after is_valid())."""
        d = self.cleaned_data
        old_restart = host.get("RestartPolicy") or {}
        restart = opts.RestartPolicy(d["restart"], d.get("restart_retries") or 0)
        memory = d["memory"]
        swap = d["memory_swap"]
        return updates.Changes(
            memory=None if memory == (int(host.get("Memory") or 0) or -1) else memory,
            memory_swap=None if swap == (int(host.get("MemorySwap") or 0) or -1) else swap,
            nano_cpus=None if d["cpus"] == int(host.get("NanoCpus") or 0) else d["cpus"],
            cpu_shares=None
            if (d["cpu_shares"] or 0) == int(host.get("CpuShares") or 0)
            else d["cpu_shares"] or 0,
            pids_limit=None if d["pids_limit"] in (None, host.get("PidsLimit")) else d["pids_limit"],
            restart=None
            if (restart.name, restart.maximum_retry_count)
            == (old_restart.get("Name") or "no", int(old_restart.get("MaximumRetryCount") or 0))
            else restart,
        )

    def engine_error(self, exc: EngineError) -> None:
        text = str(exc).lower()
        for words, field in (
            ("memoryswap", "memory_swap"),
            ("memory-swap", "memory_swap"),
            ("memory", "memory"),
            ("cpu shares", "cpu_shares"),
            ("cpu", "cpus"),
            ("pids", "pids_limit"),
            ("restart", "restart"),
        ):
            if words in text:
                self.add_error(field, str(exc))
                return
        self.add_error(None, str(exc))


def update_initial(host: dict[str, Any]) -> dict[str, Any]:
    from dashboard.forms_containers import _size_text

    restart = host.get("RestartPolicy") or {}
    swap = int(host.get("MemorySwap") or 0)
    return {
        "memory": _size_text(int(host.get("Memory") or 0)),
        "memory_swap": "-1" if swap == -1 else _size_text(swap),
        "cpus": f"{int(host.get('NanoCpus') or 0) / 1e9:g}" if host.get("NanoCpus") else "",
        "cpu_shares": host.get("CpuShares") or None,
        "pids_limit": host.get("PidsLimit"),
        "restart": restart.get("Name") or "no",
        "restart_retries": restart.get("MaximumRetryCount") or None,
    }


@login_required
@require_http_methods(["GET", "POST"])
def container_update(request: HttpRequest, ref: str) -> HttpResponse:
    container = containers.resolve(ref)
    policy.check(request.user, "container.lifecycle", container)
    status = 200
    if request.method == "POST":
        form = UpdateForm(request.POST)
        if form.is_valid():
            changes = form.changes(container.host_config or {})
            if changes.is_empty():
                form.add_error(None, "Nothing changed: these are the current limits.")
            else:
                try:
                    with events.acting_as(request.user.get_username()):
                        updates.update(container.id, changes)
                except EngineError as exc:
                    form.engine_error(exc)
                else:
                    messages.success(request, f"Updated the limits of {container.name}")
                    return redirect(reverse("container", kwargs={"ref": container.id}))
        status = 400
    else:
        form = UpdateForm(initial=update_initial(container.host_config or {}))
    context = {"c": container, "form": form, "perms": _perms(request.user)}
    return render(request, "dashboard/container_update.html", context, status=status)


urlpatterns = [
    path("containers/<str:ref>/update/", container_update, name="container_update"),
]
