"""The auditor's home: for a period, the control results at a glance, the reconciliation's counts and unpaired
records, every exception with the notes on it, and the recent bundles; open to evidence readers only."""

from urllib.parse import urlencode

import pytest
from django.test import Client

from governance.evidence.controls import CONTROLS
from governance.evidence.notes import auditor_note_add
from tests.governance.evidence.population_world import World, build_world

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> World:
    return build_world()


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def home(world: World, **params) -> str:
    period = world.period()
    query = {"start": period.start.isoformat(), "end": period.end.isoformat(), "scope": "all", **params}
    return f"/audit/evidence/?{urlencode(query)}"


def test_the_home_shows_the_controls_every_exception_with_its_notes_and_the_counts(world,
                                                                                 django_assert_max_num_queries):
    [first, *_] = sorted(world.expected_keys())
    auditor_note_add(actor=world.auditor, exception_key=first, text="Asked the team for the ticket.")
    client = client_of(world.auditor)
    client.get(home(world))
    with django_assert_max_num_queries(25):
        page = client.get(home(world))
    html = page.content.decode()
    assert page.status_code == 200
    for control in CONTROLS:
        assert f'data-control="{control.control}" data-passed="false"' in html  # each has a planted exception
    for key in world.expected_keys():
        assert f'data-key="{key}"' in html
    assert html.count('<tr data-key="') == len(world.expected_keys())
    row = html[html.index(f'data-key="{first}"'):]
    assert "1 note</summary>" in row[:row.index("</tr>")]
    assert 'id="unpaired"' in html


def test_a_bad_period_is_a_400_naming_the_field(world):
    page = client_of(world.auditor).get(home(world, end="2020-01-01"))
    assert page.status_code == 400 and "end" in page.content.decode().lower()
    assert client_of(world.auditor).get(home(world, scope="moon")).status_code == 400


@pytest.mark.parametrize("name", ["rita", "carl"])
def test_people_without_the_evidence_are_refused(world, name):
    from django.contrib.auth import get_user_model

    person = get_user_model().objects.get(username=name)
    assert client_of(person).get(home(world)).status_code == 403
