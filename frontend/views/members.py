"""A tenant's members: invite an existing user, change a role, remove. Admin role, as in the API.

The rules (nobody grants a role above their own, the last owner stays) are the registry's."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from devices.audit import Actor
from devices.models import Membership, Role, Tenant
from devices.services import change_member_role, invite_member, remove_member

from ..access import portal, tenant_view
from ..forms import MemberInviteForm, MemberRoleForm, add_service_errors
from .common import paginate


def _member(tenant: Tenant, username: str) -> Membership:
    return get_object_or_404(Membership.objects.select_related("user", "tenant"), tenant=tenant,
                             user__username=username)


def _acting_role(request: HttpRequest) -> str:
    return portal(request).role


def _refusal(request: HttpRequest, exc: Exception) -> None:
    messages.error(request, " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc))


@tenant_view(Role.ADMIN)
def member_list(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """The members; a POST invites one."""
    form = MemberInviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.cleaned_data["user"]
        try:
            invite_member(tenant, user, form.cleaned_data["role"], actor=Actor.for_user(request.user),
                          acting_role=_acting_role(request))
        except ValidationError as exc:
            add_service_errors(form, exc)
        except PermissionDenied as exc:
            form.add_error("role", str(exc))
        else:
            messages.success(request, f"{user.get_username()} is now {form.cleaned_data['role']} in {tenant.slug}.")
            return redirect("frontend:members", tenant.slug)
    members = Membership.objects.filter(tenant=tenant).select_related("user").order_by("user__username")
    return render(request, "frontend/members/list.html", {
        "tenant": tenant, "section": "members", "page": paginate(request, members), "form": form,
        "roles": Role.choices,
    })


@require_POST
@tenant_view(Role.ADMIN)
def member_role(request: HttpRequest, tenant: Tenant, username: str) -> HttpResponse:
    membership = _member(tenant, username)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a role from the list.")
        return redirect("frontend:members", tenant.slug)
    try:
        change_member_role(membership, form.cleaned_data["role"], actor=Actor.for_user(request.user),
                           acting_role=_acting_role(request))
    except (ValidationError, PermissionDenied) as exc:
        _refusal(request, exc)
    else:
        messages.success(request, f"{username} is now {form.cleaned_data['role']}.")
    return redirect("frontend:members", tenant.slug)


@tenant_view(Role.ADMIN)
def member_remove(request: HttpRequest, tenant: Tenant, username: str) -> HttpResponse:
    """GET asks for confirmation; POST removes."""
    membership = _member(tenant, username)
    if request.method != "POST":
        return render(request, "frontend/members/remove_confirm.html", {
            "tenant": tenant, "section": "members", "membership": membership,
            "is_me": membership.user_id == request.user.pk,
        })
    try:
        remove_member(membership, actor=Actor.for_user(request.user), acting_role=_acting_role(request))
    except (ValidationError, PermissionDenied) as exc:
        _refusal(request, exc)
        return redirect("frontend:members", tenant.slug)
    messages.success(request, f"{username} is no longer a member of {tenant.slug}.")
    if membership.user_id == request.user.pk:
        return redirect("frontend:home")
    return redirect("frontend:members", tenant.slug)


