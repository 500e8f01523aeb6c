"""The login view: Django's LoginView plus the rate limit of dashboard/ratelimit.py.

A locked-out client gets the form back with status 429 and a message saying for how long, and its
password is not checked at all, so a lockout cannot be used to keep guessing.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse

from dashboard import ratelimit


class BerthLoginView(LoginView):
    """Log a user in, refusing clients that failed too often (HTTP 429 while locked)."""

    template_name = "registration/login.html"
    redirect_authenticated_user = True

    # LoginView.dispatch already applies sensitive_post_parameters, csrf_protect and never_cache.
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = str(request.POST.get("username", ""))[:150]
        seconds = ratelimit.locked_for(request, username)
        if seconds:
            return self._refuse(username, seconds)
        response = super().post(request, *args, **kwargs)
        if request.user.is_authenticated:
            ratelimit.record_success(request, username)
            return response
        seconds = ratelimit.record_failure(request, username)
        if seconds:
            return self._refuse(username, seconds)
        return response

    def _refuse(self, username: str, seconds: int) -> HttpResponse:
        form = self.form_class(self.request, initial={"username": username})
        context = self.get_context_data(form=form, lockout_message=ratelimit.lockout_message(seconds))
        response = self.render_to_response(context)
        response.status_code = 429
        response["Retry-After"] = str(seconds)
        return response
