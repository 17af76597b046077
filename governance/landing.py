"""Where a person lands after logging in, or on the home page: the work their roles wait on.

A `next=` address, kept by the login page, wins over this; this is the default when there is none.
"""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_GET

from governance.roles import APPROVER_ROLES, Role, holds_team_role


def landing_url(user) -> str:
    """The first that applies, in the order of who is waiting on whom: approvals waiting on an approver, the
    day's windows on a release manager, drafts and answers on a requester, the evidence home on an auditor; anyone
    else (an administrator, a person without a role) the CMDB."""
    roles = set(user.groups.values_list("name", flat=True))
    if roles & set(APPROVER_ROLES) or holds_team_role(user):
        return reverse("governance:cab_queue") + "?awaiting_me=on"
    if Role.RELEASE_MANAGER in roles:
        return reverse("calendar:calendar") + "?view=week"
    if Role.REQUESTER in roles:
        return reverse("governance:change_list") + "?mine=either"
    if Role.AUDITOR in roles:
        return reverse("evidence:home")
    return reverse("cmdb:ci_list")


@login_required
@require_GET
def landing(request):
    return HttpResponseRedirect(landing_url(request.user))
