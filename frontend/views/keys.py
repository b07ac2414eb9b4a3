"""A tenant's API keys: create (the secret shown once), list, revoke. Admin role, as in the API."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from devices.apikeys import create_api_key, revoke_api_key
from devices.audit import Actor
from devices.models import ApiKey, Role, Tenant

from ..access import tenant_view
from ..forms import ApiKeyCreateForm, add_service_errors
from .common import paginate


def _render_list(request: HttpRequest, tenant: Tenant, form: ApiKeyCreateForm) -> HttpResponse:
    keys = ApiKey.objects.filter(tenant=tenant).order_by("revoked_at", "-created", "-id")
    return render(request, "frontend/keys/list.html", {
        "tenant": tenant, "section": "keys", "page": paginate(request, keys), "form": form,
    })


@tenant_view(Role.ADMIN)
def key_list(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """The keys; a POST creates one and answers with its secret, once, never stored nor redirected to."""
    form = ApiKeyCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            created = create_api_key(tenant, role=data["role"], name=data["name"], expires_days=data["expires_days"],
                                     actor=Actor.for_user(request.user))
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            response = render(request, "frontend/keys/created.html", {
                "tenant": tenant, "section": "keys", "api_key": created.api_key, "secret": created.key,
            })
            response["Cache-Control"] = "no-store"
            return response
    return _render_list(request, tenant, form)


@require_POST
@tenant_view(Role.ADMIN)
def key_revoke(request: HttpRequest, tenant: Tenant, prefix: str) -> HttpResponse:
    api_key = get_object_or_404(ApiKey, tenant=tenant, prefix=prefix)
    try:
        revoke_api_key(api_key, actor=Actor.for_user(request.user))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Revoked {api_key.name} ({api_key.prefix}); it is refused from now on.")
    return redirect("frontend:keys", tenant.slug)
