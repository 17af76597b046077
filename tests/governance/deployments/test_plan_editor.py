"""The plan editor: release managers and administrators make and edit deployment plans (executor and settings, waves,
health checks, migration) in one save the ledger records with what changed; every rule is the service's, each tried
here; no secret gets into a plan; the waves of a plan a deployment runs by stay as they are; bad input is a 4xx
naming the field, and writes nothing; everyone else gets 403 on every plan page."""

import json
from dataclasses import asdict, replace

import pytest
from django.test import Client

from governance.core.errors import Conflict, Forbidden, InvalidInput
from governance.deployments.plans import (
    CheckInput,
    MigrationInput,
    PlanInput,
    WaveInput,
    deployment_plan_create,
    deployment_plan_update,
)
from governance.models import AuditCapture
from releases.executors import settings_errors
from releases.models import (
    DatabaseMigration,
    Deployment,
    DeploymentKind,
    DeploymentPlan,
    DeploymentStatus,
    HealthCheck,
    PlanWave,
)
from tests.factories import make_artifact, make_ci, make_environment, make_user, sealed

pytestmark = pytest.mark.django_db

COMMAND = {"forward": ["/opt/deploy/rollout.sh", "{targets}"], "backward": ["/opt/deploy/undo.sh", "{targets}"],
           "timeout_seconds": 300}
WAVES = [WaveInput(name="canary", targets=["web-1"], bake_seconds=60),
         WaveInput(name="rest", targets=["web-2", "web-3"], manual_gate=True)]
PROBE = CheckInput(name="health", phase="smoke", url="http://{target}/healthz", body_contains="{digest}",
                   max_latency_ms=500)
ERRORS = CheckInput(name="errors", phase="watch", kind="metric", url="http://prometheus:9090",
                    query='100 * sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))',
                    threshold=2.5, measures="error_rate_pct")
MIGRATION = MigrationInput(forward=["manage.py", "migrate"], forward_schema_version="0042",
                           backward=["manage.py", "migrate", "app", "0041"], backward_schema_version="0041")
PLAN = PlanInput(executor="command", executor_settings=COMMAND, waves=WAVES, checks=[PROBE, ERRORS],
                 migration=MIGRATION)


@pytest.fixture
def where(db):
    return make_ci("shop-api"), make_environment("staging", 1)


@pytest.fixture
def plan(where, release_manager) -> DeploymentPlan:
    service, environment = where
    return deployment_plan_create(actor=release_manager, service=service, environment=environment, plan=PLAN)


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def plan_rows() -> tuple[int, ...]:
    return (DeploymentPlan.objects.count(), PlanWave.objects.count(), HealthCheck.objects.count(),
            DatabaseMigration.objects.count())


# --- the service -----------------------------------------------------------------------------------------------------

def test_a_release_manager_saves_a_plan_with_its_waves_checks_and_migration_in_one_ledger_event(where,
                                                                                               release_manager):
    service, environment = where
    saved = deployment_plan_create(actor=release_manager, service=service, environment=environment, plan=PLAN)
    assert [(w.position, w.name, w.targets, w.bake_seconds, w.manual_gate) for w in saved.waves.order_by("position")] \
        == [(1, "canary", ["web-1"], 60, False), (2, "rest", ["web-2", "web-3"], 0, True)]
    assert sorted(saved.health_checks.values_list("name", "kind")) == [("errors", "metric"), ("health", "http")]
    assert saved.migration.backward_schema_version == "0041" and saved.executor_settings == COMMAND
    [event] = sealed(action="deployment_plan_created")
    assert event.object_id == str(saved.pk) and event.context["service"] == "shop-api"
    assert event.changes["waves"]["after"][1]["targets"] == ["web-2", "web-3"]
    assert event.changes["executor_settings"]["after"] == COMMAND


def test_an_update_records_only_what_it_changed_and_rewrites_only_that(plan, release_manager):
    check_ids = set(plan.health_checks.values_list("pk", flat=True))
    waves = [WAVES[0], replace(WAVES[1], bake_seconds=600), WaveInput(name="last", targets=["web-4"])]
    deployment_plan_update(actor=release_manager, plan=plan, given=replace(PLAN, waves=waves))
    assert list(plan.waves.order_by("position").values_list("name", "bake_seconds")) == [
        ("canary", 60), ("rest", 600), ("last", 0)]
    assert set(plan.health_checks.values_list("pk", flat=True)) == check_ids  # untouched
    [event] = sealed(action="deployment_plan_updated")
    assert set(event.changes) == {"waves"}
    assert [wave["name"] for wave in event.changes["waves"]["before"]] == ["canary", "rest"]
    deployment_plan_update(actor=release_manager, plan=plan, given=replace(PLAN, waves=waves))
    assert len(sealed(action="deployment_plan_updated")) == 1  # saving it unchanged records nothing


def test_an_administrator_edits_plans_too(plan, admin_user):
    deployment_plan_update(actor=admin_user, plan=plan, given=replace(PLAN, migration=None))
    assert not DatabaseMigration.objects.exists()


@pytest.mark.parametrize("persona", ["requester", "cab_member", "auditor", "pipeline", "outsider"])
def test_only_release_managers_and_administrators_make_or_edit_plans(request, persona, where, plan):
    actor = request.getfixturevalue(persona)
    before = plan_rows()
    with pytest.raises(Forbidden):
        deployment_plan_create(actor=actor, service=make_ci("other"), environment=where[1], plan=PLAN)
    with pytest.raises(Forbidden):
        deployment_plan_update(actor=actor, plan=plan, given=replace(PLAN, waves=WAVES[:1]))
    assert plan_rows() == before and not sealed(action="deployment_plan_updated")


def _wave(**changes) -> PlanInput:
    return replace(PLAN, waves=[replace(WAVES[0], **changes), WAVES[1]])


def _check(check: CheckInput = PROBE, **changes) -> PlanInput:
    return replace(PLAN, checks=[replace(check, **changes)])


def _migration(**changes) -> PlanInput:
    return replace(PLAN, migration=replace(MIGRATION, **changes))


BROKEN = {
    "unknown executor": (replace(PLAN, executor="helm"), "executor"),
    "settings not an object": (replace(PLAN, executor_settings=["forward"]), "executor_settings"),
    "settings the executor refuses": (replace(PLAN, executor_settings={"forward": ["x"]}), "executor_settings"),
    "settings of another kind": (replace(PLAN, executor="kubernetes"), "executor_settings"),
    "a password in the settings": (replace(PLAN, executor_settings={**COMMAND, "password": "hunter2"}),
                                   "executor_settings"),
    "a token by its value": (replace(PLAN, executor="webhook", executor_settings={"token": "CD_TOKEN"}),
                             "executor_settings"),
    "an authorization header": (replace(PLAN, executor_settings={**COMMAND, "headers": {"Authorization": "x"}}),
                                "executor_settings"),
    "a token in an argument": (replace(PLAN, executor_settings={**COMMAND, "forward": ["cd", "--token=s3cr3t"]}),
                               "executor_settings"),
    "a password after its option": (replace(PLAN, executor_settings={**COMMAND, "forward": ["db", "--password", "x"]}),
                                    "executor_settings"),
    "a password in a URL": (replace(PLAN, executor="webhook", executor_settings={
        "forward_url": "https://deploy:s3cr3t@cd.example.com/go"}), "executor_settings"),
    "a GitHub token": (replace(PLAN, executor_settings={**COMMAND, "check": ["gh", "ghp_" + "a" * 36]}),
                       "executor_settings"),
    "a NUL in the settings": (replace(PLAN, executor_settings={**COMMAND, "check": ["a\x00b"]}), "executor_settings"),
    "no wave": (replace(PLAN, waves=[]), "waves"),
    "two waves of one name": (replace(PLAN, waves=[WAVES[0], replace(WAVES[1], name=" Canary ")]), "waves[1].name"),
    "a wave without a name": (_wave(name="  "), "waves[0].name"),
    "a wave without targets": (_wave(targets=[]), "waves[0].targets"),
    "a blank target": (_wave(targets=["web-1", " "]), "waves[0].targets"),
    "a target in two waves": (replace(PLAN, waves=[WAVES[0], replace(WAVES[1], targets=["web-2", "web-1"])]),
                              "waves[1].targets"),
    "a target twice in a wave": (_wave(targets=["web-1", "web-1 "]), "waves[0].targets"),
    "a bake longer than a step": (_wave(bake_seconds=3601), "waves[0].bake_seconds"),
    "a negative bake": (_wave(bake_seconds=-1), "waves[0].bake_seconds"),
    "a NUL in a wave's name": (_wave(name="can\x00ary"), "waves[0].name"),
    "a probe by ftp": (_check(url="ftp://{target}/healthz"), "checks[0].url"),
    "a probe by javascript": (_check(url="javascript:alert(1)"), "checks[0].url"),
    "a probe without a host": (_check(url="http:///healthz"), "checks[0].url"),
    "a status that is none": (_check(expected_status=700), "checks[0].expected_status"),
    "a zero latency ceiling": (_check(max_latency_ms=0), "checks[0].max_latency_ms"),
    "a probe measuring an error rate": (_check(measures="error_rate_pct"), "checks[0].measures"),
    "a check of no phase": (_check(phase="later"), "checks[0].phase"),
    "a metric check without a query": (_check(ERRORS, query=" "), "checks[0].query"),
    "a metric check without a threshold": (_check(ERRORS, threshold=None), "checks[0].threshold"),
    "a threshold that is no number": (_check(ERRORS, threshold=float("nan")), "checks[0].threshold"),
    "an error rate above 100 per cent": (_check(ERRORS, threshold=150.0), "checks[0].threshold"),
    "an error rate failing below": (_check(ERRORS, fails_when="below"), "checks[0].fails_when"),
    "a Prometheus by file": (_check(ERRORS, url="file:///etc/passwd"), "checks[0].url"),
    "a migration without a command": (_migration(forward=[]), "migration.forward"),
    "a migration to no version": (_migration(forward_schema_version=""), "migration.forward_schema_version"),
    "a backward command to no version": (_migration(backward_schema_version=""), "migration.backward_schema_version"),
    "a version to go back to without a command": (_migration(backward=[]), "migration.backward"),
    "going back to where it went": (_migration(backward_schema_version="0042"), "migration.backward_schema_version"),
    "a migration timing out at once": (_migration(timeout_seconds=0), "migration.timeout_seconds"),
    "a password in the migration": (_migration(forward=["migrate", "--password=x"]), "migration.forward"),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_each_rule_refuses_naming_the_field_and_writes_nothing(case, where, release_manager):
    given, field = BROKEN[case]
    with pytest.raises(InvalidInput) as refused:
        deployment_plan_create(actor=release_manager, service=where[0], environment=where[1], plan=given)
    assert field in {error["field"] for error in refused.value.as_errors()}, refused.value.as_errors()
    assert plan_rows() == (0, 0, 0, 0)
    assert not AuditCapture.objects.filter(action="deployment_plan_created").exists()


def test_an_update_breaking_a_rule_leaves_the_plan_as_it_was(plan, release_manager):
    before = list(PlanWave.objects.values_list("pk", "name"))
    with pytest.raises(InvalidInput):
        deployment_plan_update(actor=release_manager, plan=plan, given=replace(_wave(bake_seconds=9999)))
    assert list(PlanWave.objects.values_list("pk", "name")) == before


def test_settings_name_the_variable_holding_a_token_never_the_token(where, release_manager):
    settings = {"forward_url": "https://cd.example.com/deploy/{environment}", "backward_url":
                "https://cd.example.com/undo/{environment}", "status_url": "https://cd.example.com/jobs/{job}",
                "job_id_path": "id", "state_path": "state", "succeeded_states": ["ok"], "failed_states": ["failed"],
                "token_env": "CD_TOKEN"}
    assert not settings_errors("webhook", settings)
    saved = deployment_plan_create(actor=release_manager, service=where[0], environment=where[1],
                                   plan=replace(PLAN, executor="webhook", executor_settings=settings))
    assert saved.executor_settings["token_env"] == "CD_TOKEN"
    with pytest.raises(InvalidInput) as refused:
        deployment_plan_update(actor=release_manager, plan=saved, given=replace(
            PLAN, executor="webhook", executor_settings={**settings, "token_env": "Bearer abcdef"}))
    assert "secret" in refused.value.message


def test_one_plan_per_service_and_environment(plan, where, release_manager):
    with pytest.raises(InvalidInput) as refused:
        deployment_plan_create(actor=release_manager, service=where[0], environment=where[1], plan=PLAN)
    assert refused.value.field == "service" and "already has a plan" in refused.value.message


def _deployment_by(plan: DeploymentPlan, status: str) -> Deployment:
    builder = make_user("ci-bot")
    return Deployment.objects.create(kind=DeploymentKind.RUN, plan=plan, service=plan.service,
                                     environment=plan.environment, artifact=make_artifact(plan.service, "1.0.0",
                                                                                          created_by=builder),
                                     change_number="CHG0000001", status=status, reported_by=builder)


@pytest.mark.parametrize("status", [DeploymentStatus.QUEUED, DeploymentStatus.STARTED, DeploymentStatus.PAUSED])
def test_what_a_running_deployment_was_laid_out_from_stays_as_it_is(plan, release_manager, status):
    deployment = _deployment_by(plan, status)
    for given, field in ((replace(PLAN, waves=WAVES[:1]), "waves"), (replace(PLAN, migration=None), "migration"),
                         (replace(PLAN, executor_settings={**COMMAND, "timeout_seconds": 60}), "executor_settings"),
                         (replace(PLAN, rollout_repeatable=False), "rollout_repeatable")):
        with pytest.raises(Conflict) as refused:
            deployment_plan_update(actor=release_manager, plan=plan, given=given)
        assert refused.value.field == field and deployment.number in refused.value.message, field
    assert plan.waves.count() == 2 and DatabaseMigration.objects.filter(plan=plan).exists()
    # The checks are asked afresh at each step: they may change (a flapping probe fixed while it is paused).
    deployment_plan_update(actor=release_manager, plan=plan, given=replace(PLAN, checks=[PROBE]))
    assert plan.health_checks.count() == 1
    Deployment.objects.filter(pk=deployment.pk).update(status=DeploymentStatus.SUCCEEDED)
    deployment_plan_update(actor=release_manager, plan=plan, given=replace(PLAN, waves=WAVES[:1], migration=None))
    assert plan.waves.count() == 1


def test_a_refusal_for_a_running_deployment_names_every_part_held(plan, release_manager):
    deployment = _deployment_by(plan, DeploymentStatus.STARTED)
    with pytest.raises(Conflict) as refused:
        deployment_plan_update(actor=release_manager, plan=plan, given=replace(PLAN, waves=WAVES[:1], migration=None))
    assert [error["field"] for error in refused.value.as_errors()] == ["waves", "migration"]
    assert "cannot change until it ends" in refused.value.message and deployment.number in refused.value.message


# --- the pages -------------------------------------------------------------------------------------------------------

def form_data(*, service=None, environment=None, executor="command", settings=COMMAND, waves=WAVES, checks=(),
              migration=None, initial_waves=0, initial_checks=0, **extra) -> dict:
    """What the editor's form posts."""
    data = {"executor": executor, "rollout_repeatable": "on",
            "executor_settings": settings if isinstance(settings, str) else json.dumps(settings),
            "waves-TOTAL_FORMS": len(waves), "waves-INITIAL_FORMS": initial_waves,
            "checks-TOTAL_FORMS": len(checks), "checks-INITIAL_FORMS": initial_checks,
            "migration-timeout_seconds": "600", "editor_action": "save"}
    if service is not None:
        data |= {"service": service.pk, "environment": environment.pk}
    for index, wave in enumerate(waves):
        data |= {f"waves-{index}-name": wave.name, f"waves-{index}-targets": "\n".join(wave.targets),
                 f"waves-{index}-bake_seconds": wave.bake_seconds, f"waves-{index}-ORDER": index + 1}
        if wave.manual_gate:
            data[f"waves-{index}-manual_gate"] = "on"
    for index, check in enumerate(checks):
        data |= {f"checks-{index}-{name}": value for name, value in vars(check).items() if value is not None}
    if migration is not None:
        data |= {"migration-include": "on", "migration-forward": "\n".join(migration.forward),
                 "migration-forward_schema_version": migration.forward_schema_version,
                 "migration-backward": "\n".join(migration.backward),
                 "migration-backward_schema_version": migration.backward_schema_version}
    return {**data, **extra}


@pytest.mark.parametrize("persona", ["requester", "cab_member", "auditor", "pipeline", "outsider"])
def test_everyone_but_release_managers_and_administrators_gets_403_on_every_plan_page(request, persona, plan, where):
    client = client_of(request.getfixturevalue(persona))
    before = plan_rows()
    for url in ("/deployments/plans/", "/deployments/plans/new/", f"/deployments/plans/{plan.pk}/",
                "/deployments/plans/executor-help/?executor=webhook"):
        assert client.get(url).status_code == 403, url
    other = make_ci("other")
    assert client.post("/deployments/plans/new/", form_data(service=other, environment=where[1])).status_code == 403
    assert client.post(f"/deployments/plans/{plan.pk}/", form_data(waves=WAVES[:1])).status_code == 403
    assert plan_rows() == before
    assert "Deployment plans" not in client.get("/deployments/").content.decode()


def test_a_visitor_who_is_not_signed_in_is_sent_to_log_in(plan):
    for url in ("/deployments/plans/", f"/deployments/plans/{plan.pk}/"):
        assert Client().get(url).status_code == 302


def test_the_plan_list_shows_each_plan_in_a_bounded_number_of_queries(release_manager, admin_user,
                                                                       django_assert_max_num_queries):
    environments = [make_environment(name, position) for position, name in enumerate(("dev", "staging", "prod"))]
    for index in range(4):
        service = make_ci(f"svc-{index}")
        for environment in environments:
            deployment_plan_create(actor=release_manager, service=service, environment=environment,
                                   plan=PLAN if index % 2 else replace(PLAN, migration=None))
    client = client_of(admin_user)
    client.get("/deployments/plans/")
    # The session, the user and their permissions (4), then the count, the environments of the filter, the plans,
    # their waves and their checks: the same whatever the number of plans.
    with django_assert_max_num_queries(9):
        page = client.get("/deployments/plans/")
    html = page.content.decode()
    assert page.status_code == 200 and html.count("data-plan=") == 12
    assert "canary" in html and "to 0042" in html
    filtered = client.get("/deployments/plans/?service=svc-1&environment=prod").content.decode()
    assert filtered.count("data-plan=") == 1
    assert 'href="/deployments/plans/"' in client.get("/deployments/").content.decode()


def test_a_release_manager_creates_a_plan_on_the_page(where, release_manager):
    service, environment = where
    client = client_of(release_manager)
    page = client.get("/deployments/plans/new/")
    assert page.status_code == 200 and 'name="waves-0-name"' in page.content.decode()  # starts with a wave
    response = client.post("/deployments/plans/new/", form_data(service=service, environment=environment,
                                                                checks=[PROBE, ERRORS], migration=MIGRATION))
    assert response.status_code == 302, response.content.decode()
    saved = DeploymentPlan.objects.get()
    assert response["Location"] == f"/deployments/plans/{saved.pk}/"
    assert list(saved.waves.values_list("name", "targets", "manual_gate")) == [
        ("canary", ["web-1"], False), ("rest", ["web-2", "web-3"], True)]
    assert saved.health_checks.get(kind="metric").threshold == 2.5 and saved.migration.forward_schema_version == "0042"
    [event] = sealed(action="deployment_plan_created")
    assert event.actor_name == "release_manager" and event.object_id == str(saved.pk)


def test_the_editor_adds_reorders_and_removes_waves(plan, release_manager):
    client = client_of(release_manager)
    url = f"/deployments/plans/{plan.pk}/"
    html = client.get(url).content.decode()
    assert 'value="canary"' in html and 'name="waves-2-name"' not in html
    added = client.post(url, form_data(waves=WAVES, initial_waves=2, editor_action="add_wave"))
    assert added.status_code == 200 and 'name="waves-2-name"' in added.content.decode()
    assert plan.waves.count() == 2  # adding a row saves nothing
    with_check = client.post(url, form_data(waves=WAVES, initial_waves=2, checks=[PROBE, ERRORS], initial_checks=2,
                                            editor_action="add_check"))
    assert 'name="checks-2-name"' in with_check.content.decode() and 'value="health"' in with_check.content.decode()
    # The new wave goes first, "rest" is removed, "canary" goes last.
    data = form_data(waves=[*WAVES, WaveInput(name="first", targets=["web-9"])], initial_waves=2,
                     **{"waves-0-ORDER": "5", "waves-1-DELETE": "on", "waves-2-ORDER": "1"})
    assert client.post(url, data).status_code == 302
    assert list(plan.waves.order_by("position").values_list("name", flat=True)) == ["first", "canary"]


def test_the_editor_shows_the_help_of_the_executor_picked(release_manager):
    client = client_of(release_manager)
    html = client.get("/deployments/plans/executor-help/?executor=kubernetes").content.decode()
    assert 'data-kind="kubernetes"' in html and "image_repository" in html and "token_env" in html
    assert 'data-kind="command"' in client.get("/deployments/plans/executor-help/?executor=helm").content.decode()
    assert client.get("/deployments/plans/executor-help/?executor=%00").status_code == 400


def test_every_example_the_editor_shows_is_settings_its_executor_takes():
    from governance.deployments.forms import EXECUTOR_HELP
    from governance.deployments.plans import secret_refusals

    for kind, shown in EXECUTOR_HELP.items():
        assert not settings_errors(kind, shown["example"]), kind
        assert not secret_refusals(shown["example"]), kind


BAD_INPUT = {
    "JSON that is not JSON": ({"executor_settings": "{forward: [}"}, "executor_settings"),
    "JSON that is not an object": ({"executor_settings": "[1, 2]"}, "executor_settings"),
    "a NUL in the JSON": ({"executor_settings": '{"forward": ["a\\u0000"]}'}, "executor_settings"),
    "a raw NUL": ({"executor_settings": '{"forward": ["a\x00"]}'}, "executor_settings"),
    "a huge settings text": ({"executor_settings": json.dumps({**COMMAND, "check": ["x" * 400] * 100})},
                             "executor_settings"),
    "JSON nested too deep": ({"executor_settings": "[" * 100 + "]" * 100}, "executor_settings"),
    "an unknown kind": ({"executor": "helm"}, "executor"),
    "a secret in the settings": ({"executor_settings": json.dumps({**COMMAND, "api_key": "abc"})},
                                 "executor_settings"),
    "a NUL in a wave's name": ({"waves-0-name": "can\x00ary"}, "waves-0-name"),
    "a bake time too long": ({"waves-1-bake_seconds": "99999"}, "waves-1-bake_seconds"),
    "a bake time in words": ({"waves-1-bake_seconds": "an hour"}, "waves-1-bake_seconds"),
    "two waves of one name": ({"waves-1-name": "canary"}, "waves-1-name"),
    "a wave without targets": ({"waves-0-targets": " , "}, "waves-0-targets"),
    "every wave removed": ({"waves-0-DELETE": "on", "waves-1-DELETE": "on"}, "waves"),
    "a forged form count": ({"waves-TOTAL_FORMS": "1000000"}, "waves"),
    "a form count in words": ({"waves-TOTAL_FORMS": "many"}, "waves"),
    "a metric check without a threshold": ({"checks-TOTAL_FORMS": "1", "checks-0-name": "errors", "checks-0-phase":
                                            "watch", "checks-0-kind": "metric", "checks-0-url": "http://prom:9090",
                                            "checks-0-query": "up", "checks-0-fails_when": "above"},
                                           "checks-0-threshold"),
    "a probe by ftp": ({"checks-TOTAL_FORMS": "1", "checks-0-name": "health", "checks-0-phase": "smoke",
                        "checks-0-kind": "http", "checks-0-url": "ftp://{target}/", "checks-0-fails_when": "above"},
                       "checks-0-url"),
    "a migration going nowhere": ({"migration-include": "on", "migration-forward": "migrate"},
                                  "migration-forward_schema_version"),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_input_on_the_page_is_a_4xx_naming_the_field_and_writes_nothing(case, where, release_manager):
    change, field = BAD_INPUT[case]
    client = client_of(release_manager)
    response = client.post("/deployments/plans/new/", form_data(service=where[0], environment=where[1], **change))
    assert response.status_code == 400, response.content.decode()[:2000]
    assert f'data-field="{field}"' in response.content.decode()
    assert plan_rows() == (0, 0, 0, 0)


def test_a_huge_body_is_refused_without_a_server_error(where, release_manager):
    response = client_of(release_manager).post("/deployments/plans/new/", form_data(
        service=where[0], environment=where[1], executor_settings="x" * 3_000_000))
    assert response.status_code == 400 and plan_rows() == (0, 0, 0, 0)


def test_an_unknown_plan_is_404(release_manager):
    assert client_of(release_manager).get("/deployments/plans/99999/").status_code == 404


def test_the_page_says_why_the_waves_of_a_plan_in_use_stay_as_they_are(plan, release_manager):
    deployment = _deployment_by(plan, DeploymentStatus.STARTED)
    client = client_of(release_manager)
    url = f"/deployments/plans/{plan.pk}/"
    assert deployment.number in client.get(url).content.decode()
    response = client.post(url, form_data(waves=WAVES[:1], initial_waves=2, initial_checks=0))
    html = response.content.decode()
    assert response.status_code == 409 and 'data-field="waves"' in html and deployment.number in html
    assert 'data-field="migration"' in html  # the page removed it too
    assert plan.waves.count() == 2 and plan.health_checks.count() == 2


# --- the API ---------------------------------------------------------------------------------------------------------

def api_body(given: PlanInput = PLAN, **extra) -> dict:
    body = asdict(given)
    return {**body, **extra}


def test_a_release_manager_makes_and_replaces_a_plan_through_the_api(api, where, release_manager, auditor):
    client = api.as_user(release_manager)
    made = client.post("/api/v1/deployment-plans/", api_body(service="shop-api", environment="staging"),
                       format="json")
    assert made.status_code == 201, made.content
    body = made.json()
    assert [(wave["position"], wave["name"]) for wave in body["waves"]] == [(1, "canary"), (2, "rest")]
    assert body["migration"]["backward_schema_version"] == "0041" and body["executor_settings"] == COMMAND
    replaced = client.put(f"/api/v1/deployment-plans/{body['id']}/", api_body(replace(PLAN, migration=None)),
                          format="json")
    assert replaced.status_code == 200 and replaced.json()["migration"] is None
    read = api.as_user(auditor).get(f"/api/v1/deployment-plans/{body['id']}/").json()
    assert [check["name"] for check in read["checks"]] == ["health", "errors"]  # by phase: smoke, then watch
    assert [event.action for event in sealed(action__startswith="deployment_plan_")] == [
        "deployment_plan_created", "deployment_plan_updated"]


@pytest.mark.parametrize("persona", ["requester", "cab_member", "auditor", "pipeline", "outsider"])
def test_only_plan_editors_write_plans_through_the_api(request, api, persona, plan):
    client = api.as_user(request.getfixturevalue(persona))
    before = plan_rows()
    assert client.post("/api/v1/deployment-plans/", api_body(service="shop-api", environment="staging"),
                       format="json").status_code == 403
    assert client.put(f"/api/v1/deployment-plans/{plan.pk}/", api_body(), format="json").status_code == 403
    assert plan_rows() == before


API_BAD_INPUT = {
    "a NUL in a wave's name": ({"waves": [{"name": "a\x00b", "targets": ["x"]}]}, "waves[0].name"),
    "two waves of one name": ({"waves": [{"name": "a", "targets": ["x"]}, {"name": "a", "targets": ["y"]}]},
                              "waves[1].name"),
    "no wave": ({"waves": []}, "waves"),
    "a wave of no targets": ({"waves": [{"name": "a", "targets": []}]}, "waves[0].targets"),
    "an unknown field of a wave": ({"waves": [{"name": "a", "targets": ["x"], "size": 3}]}, "waves[0].size"),
    "a secret in the settings": ({"executor_settings": {**COMMAND, "password": "x"}}, "executor_settings"),
    "settings that are a list": ({"executor_settings": ["x"]}, "executor_settings"),
    "an unknown executor": ({"executor": "helm"}, "executor"),
    "a probe by ftp": ({"checks": [{"name": "h", "phase": "smoke", "url": "ftp://x/"}]}, "checks[0].url"),
    "a threshold in words": ({"checks": [{"name": "e", "phase": "watch", "kind": "metric", "url": "http://p",
                                          "query": "up", "threshold": "high"}]}, "checks[0].threshold"),
    "a migration of no version": ({"migration": {"forward": ["migrate"], "forward_schema_version": ""}},
                                  "migration.forward_schema_version"),
}


@pytest.mark.parametrize("case", API_BAD_INPUT, ids=list(API_BAD_INPUT))
def test_bad_input_to_the_api_is_a_400_naming_the_field_and_writes_nothing(case, api, plan, release_manager):
    change, field = API_BAD_INPUT[case]
    before = plan_rows()
    response = api.as_user(release_manager).put(f"/api/v1/deployment-plans/{plan.pk}/", api_body(**change),
                                                format="json")
    assert response.status_code == 400, response.content
    assert field in {error["field"] for error in response.json()["errors"]}, response.json()
    assert plan_rows() == before


def test_the_api_refuses_changing_the_waves_of_a_plan_in_use_with_409(api, plan, release_manager):
    deployment = _deployment_by(plan, DeploymentStatus.PAUSED)
    response = api.as_user(release_manager).put(f"/api/v1/deployment-plans/{plan.pk}/",
                                                api_body(replace(PLAN, waves=WAVES[:1])), format="json")
    assert response.status_code == 409
    [error] = response.json()["errors"]
    assert error["field"] == "waves" and error["code"] == "plan_in_use" and deployment.number in error["message"]
    assert api.as_user(release_manager).patch(f"/api/v1/deployment-plans/{plan.pk}/", {},
                                              format="json").status_code == 405


def test_ids_beyond_any_column_are_refused_not_a_server_error(where, release_manager):
    client = client_of(release_manager)
    huge = "9" * 30
    assert client.get(f"/deployments/plans/{huge}/").status_code == 404
    response = client.post("/deployments/plans/new/", {**form_data(service=where[0], environment=where[1]),
                                                       "service": huge, "environment": "-1"})
    html = response.content.decode()
    assert response.status_code == 400 and 'data-field="service"' in html and 'data-field="environment"' in html
