"""The deployment pages: the list with the queue, the start form, the live page and its buttons, shown only to
those allowed and only when the deployment's state allows; the services decide for real."""

import pytest
from django.test import Client

from governance.deployments.services import rollout_start
from releases.models import Deployment, DeploymentStatus, HealthCheck, PlanWave, RolloutStep

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sent")]


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def started(world, actor) -> Deployment:
    return rollout_start(actor=actor, change=world.change, plan=world.plan, artifact=world.new)


def test_the_list_shows_deployments_and_the_queue_in_order(deploy_world, release_manager, auditor,
                                                           django_assert_max_num_queries):
    first, second, third = (started(deploy_world, release_manager) for _ in range(3))
    client = client_of(auditor)
    client.get("/deployments/")
    with django_assert_max_num_queries(10):
        page = client.get("/deployments/")
    html = page.content.decode()
    assert page.status_code == 200
    queue = html[html.index('id="queue-title"'):html.index("</section>")]
    assert queue.index(second.number) < queue.index(third.number) and first.number not in queue
    assert "Start a deployment" not in html  # an auditor starts nothing
    assert ">Deployments</a>" in html  # the nav link
    filtered = client.get("/deployments/?kind=run&status=started").content.decode()
    results = filtered[filtered.index('id="deployment-results"'):]
    assert first.number in results and second.number not in results


def test_the_live_page_shows_waves_steps_checks_and_the_log(deploy_world, release_manager,
                                                            django_assert_max_num_queries):
    deployment = started(deploy_world, release_manager)
    HealthCheck.objects.create(plan=deploy_world.plan, name="errors", phase="watch", kind="metric",
                               url="http://127.0.0.1:9090", query="100 * rate(errors[1m])", threshold=5)
    RolloutStep.objects.filter(deployment=deployment, sequence=1).update(
        state="succeeded", output="health http://x/health: ok (200, 3 ms)\n" + "y" * 10_000,
        started_at="2026-01-01T00:00:00Z", finished_at="2026-01-01T00:00:01.5Z")
    client = client_of(release_manager)
    client.get(f"/deployments/{deployment.number}/")
    with django_assert_max_num_queries(11):
        page = client.get(f"/deployments/{deployment.number}/")
    html = page.content.decode()
    for wave in ("canary", "eu-west", "us-east"):
        assert f'data-wave="{wave}"' in html
    assert "1.5 s" in html and "Smoke tests" in html  # a step's duration
    assert "status 200, body contains <code>{digest}</code>, within 2000 ms" in html  # a check's values
    assert "<code>100 * rate(errors[1m])</code>" in html and "not above 5.0" in html
    assert 'hx-trigger="every 2s"' in html  # refreshed while it runs
    assert "ok (200, 3 ms)" not in html and "the API has the whole of it" in html  # the log keeps the end
    assert "Pause" in html and "Abort" in html and "Resume" not in html and "Approve next wave" not in html
    with django_assert_max_num_queries(10):
        live = client.get(f"/deployments/{deployment.number}/live/")
    assert live.status_code == 200 and live.content.decode().lstrip().startswith("<div id=\"deployment-live\"")


def test_a_finished_deployment_stops_refreshing_and_offers_no_button(deploy_world, release_manager):
    deployment = started(deploy_world, release_manager)
    Deployment.objects.filter(pk=deployment.pk).update(status=DeploymentStatus.SUCCEEDED,
                                                       finished_at="2026-01-01T00:00:00Z")
    html = client_of(release_manager).get(f"/deployments/{deployment.number}/live/").content.decode()
    assert "hx-trigger" not in html and "<button" not in html


def test_readers_see_no_buttons_and_cannot_press_them(deploy_world, release_manager, auditor, outsider):
    deployment = started(deploy_world, release_manager)
    html = client_of(auditor).get(f"/deployments/{deployment.number}/").content.decode()
    assert "<button" not in html.split('id="deployment-live"')[1]
    for action in ("pause", "resume", "abort", "approve"):
        answer = client_of(auditor).post(f"/deployments/{deployment.number}/{action}/", {"reason": "no"})
        assert answer.status_code == 403, action
    assert client_of(auditor).get("/deployments/start/").status_code == 403
    assert client_of(outsider).get("/deployments/").status_code == 403
    assert client_of(outsider).get(f"/deployments/{deployment.number}/").status_code == 403
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.STARTED


def test_pause_resume_and_abort_from_the_page(deploy_world, release_manager):
    deployment = started(deploy_world, release_manager)
    client = client_of(release_manager)
    url = f"/deployments/{deployment.number}"
    paused = client.post(f"{url}/pause/", HTTP_HX_REQUEST="true").content.decode()
    assert 'data-status="paused"' in paused and "Resume" in paused and "is paused" in paused
    client.post(f"{url}/resume/")
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.STARTED
    refused = client.post(f"{url}/abort/", {"reason": "  "}, HTTP_HX_REQUEST="true").content.decode()
    assert "Say why it is aborted" in refused
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.STARTED
    client.post(f"{url}/abort/", {"reason": "Wrong build"})
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.ABORTED
    again = client.post(f"{url}/pause/", follow=True).content.decode()
    assert "cannot go from aborted" in again or "already ended" in again


def test_approve_next_wave_shows_only_while_a_wave_waits(deploy_world, release_manager):
    PlanWave.objects.filter(plan=deploy_world.plan, position=1).update(manual_gate=True)
    deployment = started(deploy_world, release_manager)
    Deployment.objects.filter(pk=deployment.pk).update(status=DeploymentStatus.PAUSED)
    client = client_of(release_manager)
    html = client.get(f"/deployments/{deployment.number}/").content.decode()
    assert "Approve next wave" in html
    after = client.post(f"/deployments/{deployment.number}/approve/", HTTP_HX_REQUEST="true").content.decode()
    assert "Approve next wave" not in after and "is approved" in after


def test_a_release_manager_starts_one_from_the_form_with_the_changes_plans(deploy_world, release_manager):
    client = client_of(release_manager)
    form = client.get(f"/deployments/start/?change={deploy_world.change.number}").content.decode()
    assert str(deploy_world.plan) in form and "shop-api 1.1.0" in form
    answer = client.post(f"/deployments/start/?change={deploy_world.change.number}", {
        "change": deploy_world.change.number, "plan": deploy_world.plan.pk, "artifact": deploy_world.new.digest})
    deployment = Deployment.objects.get(kind="run")
    assert answer.status_code == 302 and answer["Location"] == f"/deployments/{deployment.number}/"


def test_a_refused_start_shows_the_reasons_on_the_form(deploy_world, release_manager):
    deploy_world.change.status = "draft"
    deploy_world.change.save()
    answer = client_of(release_manager).post("/deployments/start/", {
        "change": deploy_world.change.number, "plan": deploy_world.plan.pk, "artifact": deploy_world.new.digest})
    assert answer.status_code == 200 and 'class="errors"' in answer.content.decode()
    assert not Deployment.objects.filter(kind="run").exists()
    bad = client_of(release_manager).post("/deployments/start/", {"change": "CHG\x00", "plan": "x",
                                                                   "artifact": "y" * 5000})
    assert bad.status_code == 200 and not Deployment.objects.filter(kind="run").exists()


def test_a_deployment_a_pipeline_reported_has_a_page_without_steps_or_buttons(deploy_world, release_manager):
    reported = Deployment.objects.get(kind="reported")
    html = client_of(release_manager).get(f"/deployments/{reported.number}/").content.decode()
    assert "its steps and log are the pipeline's" in html
    live = html.split('id="deployment-live"')[1].split("</section>")[0]
    assert 'hx-trigger="every' not in html and "<button" not in live


def test_a_deployment_page_shows_the_waves_it_was_started_with_after_its_plan_changed(deploy_world,
                                                                                    release_manager):
    deployment = started(deploy_world, release_manager)
    Deployment.objects.filter(pk=deployment.pk).update(status=DeploymentStatus.SUCCEEDED)
    PlanWave.objects.filter(plan=deploy_world.plan, name="us-east").delete()
    PlanWave.objects.filter(plan=deploy_world.plan, name="eu-west").update(name="europe", bake_seconds=30)
    html = client_of(release_manager).get(f"/deployments/{deployment.number}/").content.decode()
    assert [f'data-wave="{wave}"' in html for wave in ("canary", "eu-west", "us-east", "europe")] == [
        True, True, True, False]
    assert "bakes 30 s" not in html  # europe's bake time is not eu-west's


def test_the_change_page_panel_lists_its_deployments_and_offers_the_start_to_a_release_manager(
        deploy_world, release_manager, auditor, django_assert_max_num_queries):
    deployment = started(deploy_world, release_manager)
    url = f"/deployments/of-change/{deploy_world.change.number}/"
    client = client_of(release_manager)
    started(deploy_world, release_manager)  # a second one, queued: the count stays
    client.get(url)
    with django_assert_max_num_queries(13):
        panel = client.get(url).content.decode()
    assert f'data-deployment="{deployment.number}"' in panel and ">Deploy</button>" in panel
    assert f'value="{deploy_world.plan.pk}" selected' in panel  # the change's one plan, picked
    as_auditor = client_of(auditor).get(url).content.decode()
    assert deployment.number in as_auditor and ">Deploy</button>" not in as_auditor  # reads, starts nothing
    assert client_of(auditor).get("/deployments/of-change/CHG9999999/").status_code == 404
    change_page = client.get(f"/changes/{deploy_world.change.number}/").content.decode()
    assert f'hx-get="{url}"' in change_page
