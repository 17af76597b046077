"""The admin's view of the gate: the answers sent to GitHub."""

from django.contrib import admin

from governance.core.admin import RecordAdmin
from governance.models import GitHubReview


@admin.register(GitHubReview)
class GitHubReviewAdmin(RecordAdmin):
    """The answers sent to GitHub deployment protection rules: a record, not something to edit."""

    list_display = ["received_at", "repository", "environment_name", "state", "answered_at", "attempts"]
    list_filter = ["state", "environment_name"]
    search_fields = ["repository", "sha", "delivery"]
    # Shown as text: a view-only admin still builds a form field for every field it does not list here.
    readonly_fields = [field.name for field in GitHubReview._meta.fields]
