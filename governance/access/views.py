"""The tokens page: a user's own API tokens, and an administrator's service accounts' tokens, issued, rotated and
revoked; revoking and rotating ask for confirmation first."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from governance.access.forms import ApiTokenForm
from governance.access.selectors import may_issue_for_others, tokens_managed_by
from governance.access.services import IssuedToken, api_token_create, api_token_revoke, api_token_rotate
from governance.core.errors import DomainError, refuse_if_forbidden


def _list_page(request, form: ApiTokenForm, issued: IssuedToken | None = None, status: int = 200):
    response = render(request, "governance/token_list.html", {
        "form": form, "issued": issued, "tokens": tokens_managed_by(request.user),
        "for_others": may_issue_for_others(request.user),
    }, status=status)
    if issued:
        response["Cache-Control"] = "no-store"  # the secret is on this response only
    return response


@login_required
@require_http_methods(["GET", "POST"])
def token_list(request):
    """The tokens the user manages; a new token's secret is shown on this response and never again."""
    form = ApiTokenForm(request.POST or None, user=request.user)
    issued = None
    if request.method == "POST" and form.is_valid():
        try:
            issued = api_token_create(
                actor=request.user, owner=form.chosen_owner(),
                name=form.cleaned_data["name"], expires_days=form.cleaned_data["expires_days"],
                services=form.cleaned_data["services"], environments=form.cleaned_data["environments"],
            )
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            form = ApiTokenForm(user=request.user)
    return _list_page(request, form, issued)


@login_required
@require_http_methods(["GET", "POST"])
def token_revoke(request, pk: int):
    """GET asks for confirmation; POST revokes."""
    token = get_object_or_404(tokens_managed_by(request.user), pk=pk)
    if request.method == "GET":
        return render(request, "governance/token_confirm.html", {"token": token, "action": "revoke"})
    try:
        api_token_revoke(actor=request.user, token=token)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("token_list")


@login_required
@require_http_methods(["GET", "POST"])
def token_rotate(request, pk: int):
    """GET asks for confirmation; POST issues the new token, revokes the old one and shows the new secret once."""
    token = get_object_or_404(tokens_managed_by(request.user), pk=pk)
    if request.method == "GET":
        return render(request, "governance/token_confirm.html", {"token": token, "action": "rotate"})
    try:
        issued = api_token_rotate(actor=request.user, token=token)
    except DomainError as exc:
        refuse_if_forbidden(exc)
        messages.error(request, exc.message)
        return redirect("token_list")
    return _list_page(request, ApiTokenForm(user=request.user), issued)
