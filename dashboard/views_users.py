"""Users pages (admins): list, create, change role, (de)activate, reset password; and, for everyone,
"change my password".

Each view checks `user.manage` (or, for one's own password, only the login), calls one function of
engine/services/users.py as the signed-in user (so the event names them), then redirects with a
toast. Form errors come back next to their field, one per field.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dashboard import policy
from dashboard.forms_users import CreateUserForm, OwnPasswordForm, ResetPasswordForm, RoleForm
from engine import events
from engine.errors import AlreadyExists, EngineError, InvalidState
from engine.services import users


@login_required
@require_GET
def user_list(request: HttpRequest) -> HttpResponse:
    policy.check(request.user, "user.manage")
    return render(request, "dashboard/users/list.html", {"users": users.list_users()})


@login_required
@require_http_methods(["GET", "POST"])
def user_create(request: HttpRequest) -> HttpResponse:
    policy.check(request.user, "user.manage")
    form = CreateUserForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with events.acting_as(request.user.get_username()):
                user = users.create(
                    data["username"], data["password1"], role=data["role"], email=data["email"]
                )
        except AlreadyExists as exc:
            form.add_error("username", str(exc))
        except EngineError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Created user {user.username} ({data['role']})")
            return redirect("user", username=user.username)
    status = 400 if form.errors else 200
    return render(request, "dashboard/users/create.html", {"form": form}, status=status)


def _detail(request: HttpRequest, username: str, **forms: Any) -> HttpResponse:
    user = users.get(username)
    context = {
        "subject": user,
        "role_form": forms.get("role_form") or RoleForm(initial={"role": user.role or "viewer"}),
        "password_form": forms.get("password_form") or ResetPasswordForm(),
        "is_self": user.pk == request.user.pk,
    }
    return render(request, "dashboard/users/detail.html", context, status=400 if forms else 200)


@login_required
@require_GET
def user_detail(request: HttpRequest, username: str) -> HttpResponse:
    policy.check(request.user, "user.manage")
    return _detail(request, username)


@login_required
@require_POST
def user_role(request: HttpRequest, username: str) -> HttpResponse:
    policy.check(request.user, "user.manage")
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _detail(request, username, role_form=form)
    with events.acting_as(request.user.get_username()):
        user = users.set_role(username, form.cleaned_data["role"])
    messages.success(
        request, f"{user.username} is now {'an' if user.role[0] in 'aeiou' else 'a'} {user.role}"
    )
    return redirect("user", username=user.username)


@login_required
@require_POST
def user_active(request: HttpRequest, username: str) -> HttpResponse:
    policy.check(request.user, "user.manage")
    active = request.POST.get("active") == "1"
    if not active and username == request.user.get_username():
        raise InvalidState("you cannot deactivate yourself (ask another admin)")
    with events.acting_as(request.user.get_username()):
        user = users.set_active(username, active)
    messages.success(request, f"{'Activated' if active else 'Deactivated'} {user.username}")
    return redirect("user", username=user.username)


@login_required
@require_POST
def user_password(request: HttpRequest, username: str) -> HttpResponse:
    policy.check(request.user, "user.manage")
    subject = users.get(username)
    form = ResetPasswordForm(request.POST, user=subject)
    if not form.is_valid():
        return _detail(request, username, password_form=form)
    with events.acting_as(request.user.get_username()):
        users.set_password(username, form.cleaned_data["password1"], own=subject.pk == request.user.pk)
    if subject.pk == request.user.pk:
        update_session_auth_hash(request, users.get(username))  # stay signed in here
    messages.success(request, f"Password of {username} reset")
    return redirect("user", username=username)


@login_required
@require_http_methods(["GET", "POST"])
def own_password(request: HttpRequest) -> HttpResponse:
    """Everyone, whatever their role (even none), may change their own password."""
    form = OwnPasswordForm(request.user, request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        username = request.user.get_username()
        with events.acting_as(username):
            user = users.set_password(username, form.cleaned_data["new_password1"], own=True)
        update_session_auth_hash(request, user)  # this session stays; the others end
        messages.success(request, "Your password was changed")
        return redirect("account_password")
    status = 400 if form.errors else 200
    return render(request, "dashboard/users/password.html", {"form": form}, status=status)


urlpatterns = [
    path("users/", user_list, name="users"),
    path("users/new/", user_create, name="user_create"),
    path("users/<str:username>/", user_detail, name="user"),
    path("users/<str:username>/role/", user_role, name="user_role"),
    path("users/<str:username>/active/", user_active, name="user_active"),
    path("users/<str:username>/password/", user_password, name="user_password"),
    path("account/password/", own_password, name="account_password"),
]
