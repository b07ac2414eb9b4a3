"""The portal's entry: the tenant the user works in, or the list to pick one from."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from ..access import visible_tenants


@login_required
def home(request: HttpRequest) -> HttpResponse:
    tenants = visible_tenants(request.user)
    if len(tenants) == 1:
        return redirect("frontend:overview", tenants[0].slug)
    return render(request, "frontend/home.html", {"tenants": tenants})
