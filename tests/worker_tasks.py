"""Tasks that exist only for tests, loaded by the workers the tests start (`--include`)."""

from celery import shared_task

from cmdb.models import Team


@shared_task
def team_describe(team_id: int, description: str) -> None:
    team = Team.objects.get(pk=team_id)
    team.description = description
    team.save(update_fields=["description"])
