"""Bulk actions on the containers list: start/stop/restart/kill/remove many containers at once.

The POST checks the policy for every selected container, resolves them all, then starts one job
(`kind="bulk"`) that runs `services.bulk.run` in a worker: the containers are acted on concurrently,
each reporting its row (queued → working, with the stop's grace deadline → done/failed). An htmx
request gets the progress panel at once and static/js/bulk.js follows `ws/jobs/<id>/`; a plain form
post waits for the whole run and comes back to the list with the summary.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from dashboard import policy
from dashboard.errors import is_htmx
from engine import events
from engine.services import bulk, jobs

POLICY = {"remove": "container.remove"}  # every other bulk action is a lifecycle action


@login_required
@require_POST
def bulk_run(request: HttpRequest) -> HttpResponse:
    action = request.POST.get("action", "")
    needed = POLICY.get(action, "container.lifecycle")
    policy.check(request.user, needed)  # refuse before resolving anything
    targets = bulk.resolve_targets(action, request.POST.getlist("ids"))
    for container in targets:
        policy.check(request.user, needed, container)
    actor = request.user.get_username()
    if not is_htmx(request):
        with events.acting_as(actor):
            result = bulk.run(action, targets)
        level = messages.ERROR if result.failed else messages.SUCCESS
        messages.add_message(request, level, result.summary())
        return redirect("containers")

    def work(*, progress: Any) -> dict[str, Any]:
        result = bulk.run(action, targets, progress=progress)
        return {
            "summary": result.summary(),
            "done": result.done,
            "failed": [{"name": n, "error": e} for n, e in result.failed],
            "seconds": round(result.seconds, 2),
        }

    names = ", ".join(c.name for c in targets)
    job = jobs.start("bulk", f"{bulk.WORKING[action]} {names}", work, actor=actor)
    context = {
        "job": job,
        "action": action,
        "verb": bulk.WORKING[action],
        "rows": [{"id": c.id, "name": c.name} for c in targets],
    }
    return render(request, "dashboard/partials/_bulk_progress.html", context)


urlpatterns = [path("containers/bulk/run/", bulk_run, name="containers_bulk_run")]
