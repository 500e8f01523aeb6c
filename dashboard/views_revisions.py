"""Dashboard pages that change a container's spec: Edit (with a diff to confirm), Duplicate, Roll back,
and the Revisions tab's context (Update limits, which changes a running container in place, is views_update).

Edit and Duplicate reuse the Run form (dashboard/forms_containers.py, templates/dashboard/container_run.html)
filled from the container's stored spec (`revisions.spec_of`). Options the form has no field for are
kept from that spec, and so are the fields a non-admin does not see (bind mounts, capabilities,
privileged, read-only), so an operator's edit never drops them silently; the policy then decides
whether the result may be created. Operators may edit, duplicate, roll back and update; viewers see
the revisions only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_http_methods, require_POST

from dashboard import policy
from dashboard.forms_containers import RunForm, cli_command, initial_from
from dashboard.views_containers import _perms, mask_env
from dashboard.views_run import _image_names, _user_networks
from engine import events
from engine.errors import EngineError, InvalidState, PermissionDenied
from engine.models import Container
from engine.services import containers, lifecycle, revisions
from engine.services import options as opts

LABELS = {
    "image": "Image",
    "command": "Command",
    "entrypoint": "Entrypoint",
    "env": "Environment",
    "workdir": "Working directory",
    "user": "User",
    "labels": "Labels",
    "hostname": "Hostname",
    "mounts": "Mounts",
    "restart": "Restart policy",
    "memory": "Memory limit",
    "memory_swap": "Memory + swap limit",
    "cpus": "CPUs",
    "pids_limit": "PIDs limit",
    "read_only": "Read-only root filesystem",
    "cap_add": "Added capabilities",
    "cap_drop": "Dropped capabilities",
    "network": "Network",
    "network_aliases": "Network aliases",
    "publish": "Published ports",
    "publish_all": "Publish all exposed ports",
    "add_hosts": "Extra hosts",
    "dns": "DNS servers",
    "auto_remove": "Remove when it exits",
    "extra": "Other limits and networks",
}
# Run form fields a non-admin is not shown: an edit by one keeps these from the stored spec.
ADMIN_ONLY = ("privileged", "cap_add", "cap_drop", "read_only")


def _checks(request: HttpRequest, container: Container, options: opts.ContainerOptions | None) -> None:
    """An edit, duplicate or rollback creates a container and stops and removes one."""
    policy.check(request.user, "container.lifecycle", container)
    policy.check(request.user, "container.remove", container)
    policy.check(request.user, "container.create", spec=_policy_spec(options) if options else None)


def _policy_spec(options: opts.ContainerOptions) -> dict[str, Any]:
    """The options in policy.check's keys (as RunForm.spec() gives them)."""
    return {
        "binds": [f"{m.source}:{m.destination}" for m in options.mounts if m.kind == "bind"],
        "mounts": [{"type": m.kind, "source": m.source, "target": m.destination} for m in options.mounts],
        "privileged": options.privileged,
        "cap_add": list(options.cap_add),
        "network": options.network,
        "no_new_privileges": options.no_new_privileges,
        "security_opt": ["seccomp=unconfined"] if options.seccomp_unconfined else [],
    }


def _from_form(request: HttpRequest, form: RunForm, base: opts.ContainerOptions) -> opts.ContainerOptions:
    new = form.to_options(base)
    if policy.role_of(request.user) != policy.ADMIN:
        keep = {name: getattr(base, name) for name in ADMIN_ONLY}
        binds = tuple(m for m in base.mounts if m.kind == "bind")
        shown = tuple(m for m in new.mounts if m.kind != "bind")
        new = dataclasses.replace(new, mounts=shown + binds, **keep)
    return new


def _form(request: HttpRequest, container: Container, data: Any = None, initial: Any = None) -> RunForm:
    user_networks = _user_networks()
    mode = (container.host_config or {}).get("NetworkMode") or "bridge"
    if mode not in ("bridge", "host", "none", "default", *user_networks):
        user_networks = (*user_networks, mode)  # e.g. container:ID: keep it a valid choice
    return RunForm(data, initial=initial, networks=user_networks, show_host=_perms(request.user)["admin"])


def _fingerprint(options: opts.ContainerOptions) -> str:
    """Names the spec a diff was computed against, so a confirm after someone else's edit is caught."""
    text = json.dumps(revisions.to_dict(options), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _form_page(
    request: HttpRequest, form: RunForm, container: Container, *, mode: str, status: int = 200
) -> HttpResponse:
    detail = reverse("container", kwargs={"ref": container.id})
    if mode == "edit":
        extra = {
            "heading": f"Edit {container.name}",
            "form_action": reverse("container_edit", kwargs={"ref": container.id}),
            "submit_label": "Review changes",
            "intro": "Saving shows what changes first. Confirming recreates the container under the "
            "same name with its volumes and networks, and keeps the current spec as a revision.",
        }
        form.fields["name"].widget.attrs["readonly"] = True
        form.fields["name"].help_text = "Edit keeps the name; use Duplicate for a copy under another name."
    else:
        extra = {
            "heading": f"Duplicate {container.name}",
            "form_action": reverse("container_duplicate", kwargs={"ref": container.id}),
            "submit_label": "Create duplicate",
            "intro": f"A new container from the spec of {container.name}; {container.name} is not changed. "
            "Named volumes are shared with it; fixed host ports would clash while both run.",
        }
    data = form.data if form.is_bound else {**{k: f.initial for k, f in form.fields.items()}, **form.initial}
    context = {
        "form": form,
        "image_names": _image_names(),
        "cli": cli_command(data),
        "perms": _perms(request.user),
        "cancel_url": detail,
        **extra,
    }
    return render(request, "dashboard/container_run.html", context, status=status)


# -- edit --------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def container_edit(request: HttpRequest, ref: str) -> HttpResponse:
    container = containers.resolve(ref)
    _checks(request, container, None)
    base = revisions.spec_of(container)
    if request.method == "GET":
        return _form_page(
            request, _form(request, container, initial=initial_from(base)), container, mode="edit"
        )
    form = _form(request, container, request.POST)
    if not form.is_valid() or request.POST.get("back"):
        return _form_page(request, form, container, mode="edit", status=200 if form.is_valid() else 400)
    new = dataclasses.replace(_from_form(request, form, base), name=container.name)
    changes = revisions.diff(base, new)
    if not changes:
        form.add_error(None, "Nothing changed: the form matches the container's current spec.")
        return _form_page(request, form, container, mode="edit", status=400)
    # Only a confirm of the diff shown for the current spec recreates; anything else shows the diff.
    shown, current = request.POST.get("base") or "", _fingerprint(base)
    if request.POST.get("confirm") != "1" or shown != current:
        return _confirm_page(request, container, form, changes, base, stale=bool(shown) and shown != current)
    try:
        policy.check(request.user, "container.create", spec=_policy_spec(new))
    except PermissionDenied as exc:
        form.refuse(exc)
        return _form_page(request, form, container, mode="edit", status=403)
    try:
        replaced = revisions.recreate(container.id, new, actor=request.user.get_username())
    except InvalidState as exc:  # the new spec did not start: about the whole spec, not one field
        form.add_error(None, str(exc))
        return _form_page(request, form, container, mode="edit", status=exc.status)
    except EngineError as exc:
        form.engine_error(exc)
        return _form_page(request, form, container, mode="edit", status=exc.status)
    number = revisions.revisions(replaced.id)[0].number
    messages.success(request, f"Recreated {replaced.name} with the new spec (revision {number})")
    return redirect(reverse("container", kwargs={"ref": replaced.id}) + "?tab=revisions")


def _confirm_page(
    request: HttpRequest,
    container: Container,
    form: RunForm,
    changes: list[tuple[str, Any, Any]],
    base: opts.ContainerOptions,
    *,
    stale: bool,
) -> HttpResponse:
    hidden = [
        (key, value)
        for key in request.POST
        if key not in ("csrfmiddlewaretoken", "confirm", "base", "back")
        for value in request.POST.getlist(key)
    ]
    context = {
        "c": container,
        "rows": diff_rows(changes),
        "hidden": hidden,
        "fingerprint": _fingerprint(base),
        "stale": stale,
        "running": container.state in revisions.RUNNING_STATES,
        "perms": _perms(request.user),
    }
    return render(request, "dashboard/container_edit_confirm.html", context)


def diff_rows(changes: list[Any]) -> list[dict[str, Any]]:
    """(field, old, new) triples as table rows: list items marked removed/added, secrets masked."""
    rows = []
    for field, old, new in changes:
        old_items, new_items = _items(field, old), _items(field, new)
        old_set, new_set = {t for t, _ in old_items}, {t for t, _ in new_items}
        rows.append(
            {
                "field": field,
                "label": LABELS.get(field, field.replace("_", " ").capitalize()),
                "old": [(text, text not in new_set and isinstance(old, list)) for text, _ in old_items],
                "new": [(text, text not in old_set and isinstance(new, list)) for text, _ in new_items],
            }
        )
    return rows


def _items(field: str, value: Any) -> list[tuple[str, bool]]:
    if value is None or value == [] or value == "":
        return []
    if isinstance(value, bool):
        return [("yes" if value else "no", False)]
    if isinstance(value, list):
        texts = [str(v) for v in value]
        if field == "env":
            texts = [f"{k}={v}" for k, v, _ in mask_env(texts)]
        return [(t, False) for t in texts]
    return [(str(value), False)]


# -- duplicate ---------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def container_duplicate(request: HttpRequest, ref: str) -> HttpResponse:
    container = containers.resolve(ref)
    policy.check(request.user, "container.create")
    base = revisions.spec_of(container)
    if request.method == "GET":
        suggested = f"{container.name}-copy"
        if Container.objects.filter(name=suggested).exists():
            suggested = ""
        initial = initial_from(dataclasses.replace(base, name=suggested or None))
        return _form_page(request, _form(request, container, initial=initial), container, mode="duplicate")
    form = _form(request, container, request.POST)
    if not form.is_valid():
        return _form_page(request, form, container, mode="duplicate", status=400)
    options = dataclasses.replace(
        _from_form(request, form, base), name=form.cleaned_data["name"] or None, auto_remove=False
    )
    try:
        policy.check(request.user, "container.create", spec=_policy_spec(options))
    except PermissionDenied as exc:
        form.refuse(exc)
        return _form_page(request, form, container, mode="duplicate", status=403)
    with events.acting_as(request.user.get_username()):
        try:
            created = containers.create(options)
        except EngineError as exc:
            form.engine_error(exc)
            return _form_page(request, form, container, mode="duplicate", status=400)
        try:
            lifecycle.start(created.id)
            messages.success(request, f"Started {created.name}, a duplicate of {container.name}")
        except EngineError as exc:
            messages.error(request, f"{created.name} was created but did not start: {exc}")
    return redirect(reverse("container", kwargs={"ref": created.id}))


# -- rollback and the revisions tab --------------------------------------------------------------


@login_required
@require_POST
def container_rollback(request: HttpRequest, ref: str, number: int) -> HttpResponse:
    container = containers.resolve(ref)
    _checks(request, container, None)
    chosen = revisions.revision(container.id, number)
    policy.check(request.user, "container.create", spec=_policy_spec(revisions.from_dict(chosen.spec)))
    replaced = revisions.rollback(container.id, number, actor=request.user.get_username())
    latest = revisions.revisions(replaced.id)[0].number
    messages.success(
        request, f"Rolled {replaced.name} back to revision {number} (recorded as revision {latest})"
    )
    return redirect(reverse("container", kwargs={"ref": replaced.id}) + "?tab=revisions")


def tab_context(request: HttpRequest, container: Container) -> dict[str, Any]:
    """What the Revisions tab shows: every revision, newest first, with its changes."""
    rows = revisions.revisions(container.id)
    current = rows[0].number if rows else None
    items = [
        {
            "number": r.number,
            "action": r.action,
            "restored": r.restored,
            "actor": r.actor,
            "created": r.created,
            "current": r.number == current,
            "changes": diff_rows(r.changes),
        }
        for r in rows
    ]
    can_change = all(
        policy.allowed(request.user, action, container)
        for action in ("container.lifecycle", "container.remove", "container.create")
    )
    return {"revisions": items, "can_rollback": can_change}


urlpatterns = [
    path("containers/<str:ref>/edit/", container_edit, name="container_edit"),
    path("containers/<str:ref>/duplicate/", container_duplicate, name="container_duplicate"),
    path(
        "containers/<str:ref>/revisions/<int:number>/rollback/",
        container_rollback,
        name="container_rollback",
    ),
]
