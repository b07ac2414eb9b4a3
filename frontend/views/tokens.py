"""A tenant's enrollment tokens: create (the secret shown once), list, revoke. Admin role, as in the API.

Tokens are made and revoked by pki/enrollment.py, the same functions as the API and the CLI."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from devices.audit import Actor
from devices.models import Role, Tenant
from pki.enrollment import create_token, find_token, revoke_token
from pki.errors import PkiError
from pki.models import EnrollmentToken

from ..access import tenant_view
from ..forms import EnrollmentTokenForm
from .common import paginate


@tenant_view(Role.ADMIN)
def token_list(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """The tokens; a POST creates one and answers with its secret, once, never stored nor redirected to."""
    form = EnrollmentTokenForm(tenant, request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            created = create_token(tenant, uses=data["uses"], expires_in=data["expires_in"], group=data["group"],
                                   attributes=data["attributes"], label=data["label"],
                                   actor=Actor.for_user(request.user))
        except PkiError as exc:
            form.add_error(None, exc.message)
        else:
            response = render(request, "frontend/tokens/created.html", {
                "tenant": tenant, "section": "tokens", "token": created.token, "secret": created.secret,
            })
            response["Cache-Control"] = "no-store"
            return response
    tokens = EnrollmentToken.objects.filter(tenant=tenant).select_related("group").order_by("-created", "-id")
    return render(request, "frontend/tokens/list.html", {
        "tenant": tenant, "section": "tokens", "page": paginate(request, tokens), "form": form,
    })


@require_POST
@tenant_view(Role.ADMIN)
def token_revoke(request: HttpRequest, tenant: Tenant, prefix: str) -> HttpResponse:
    try:
        token = find_token(tenant, prefix)
    except PkiError as exc:
        if exc.status == 404:
            raise Http404(exc.message) from None
        messages.error(request, exc.message)
        return redirect("frontend:tokens", tenant.slug)
    try:
        revoke_token(token, actor=Actor.for_user(request.user))
    except PkiError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Revoked {token.prefix}…; enrollment with it is refused from now on. "
                                  "The devices it enrolled stay.")
    return redirect("frontend:tokens", tenant.slug)
