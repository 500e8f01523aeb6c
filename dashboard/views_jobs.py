"""Job pages: the progress of long work (load, import, prune), which survives navigating away."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_GET

from dashboard import policy
from engine.errors import PermissionDenied
from engine.services import jobs


@login_required
@require_GET
def job_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    policy.check(request.user, "view")
    job = jobs.get(job_id)
    if job.created_by != request.user.get_username() and policy.role_of(request.user) != policy.ADMIN:
        raise PermissionDenied("this job belongs to another user")
    template = "dashboard/partials/_job.html" if request.headers.get("HX-Request") else "dashboard/job.html"
    return render(request, template, {"job": job, "cancellable": jobs.can_cancel(job.pk)})


urlpatterns = [path("jobs/<uuid:job_id>/", job_detail, name="job")]
