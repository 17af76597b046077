"""The tokens page: a user's own API tokens, issued and revoked."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from governance.access.forms import ApiTokenForm
from governance.access.services import api_token_create, api_token_revoke
from governance.core.errors import DomainError
from governance.models import ApiToken


@login_required
@require_http_methods(["GET", "POST"])
def token_list(request):
    """The user's own API tokens; a new token's secret is shown on this response and never again."""
    form = ApiTokenForm(request.POST or None)
    issued = None
    if request.method == "POST" and form.is_valid():
        try:
            issued = api_token_create(
                actor=request.user, owner=request.user,
                name=form.cleaned_data["name"], expires_days=form.cleaned_data["expires_days"],
                services=form.cleaned_data["services"], environments=form.cleaned_data["environments"],
            )
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            form = ApiTokenForm()
    tokens = ApiToken.objects.filter(user=request.user).prefetch_related("services", "environments")
    response = render(request, "governance/token_list.html", {"form": form, "issued": issued, "tokens": tokens})
    if issued:
        response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request, pk: int):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    try:
        api_token_revoke(actor=request.user, token=token)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("token_list")
