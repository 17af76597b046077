"""The ledger page's time filters: date and time pickers with their format in sight, reading every moment the API
reads, the same way."""

import re

import pytest

from governance.audit.ledger import audit_seal
from tests.factories import at, note

pytestmark = pytest.mark.django_db

SEARCH = "/audit/"
API = "/api/v1/audit/events/"


@pytest.fixture
def sample(db):
    """An event each hour from 08:00 to 12:00 UTC on 2 March 2024."""
    for hour in range(8, 13):
        note(f"event at {hour}", when=at(2, hour))
    audit_seal()


@pytest.fixture
def auditor_client(client, auditor):
    client.force_login(auditor)
    return client


def shown_labels(response) -> list[str]:
    assert response.status_code == 200, response.content[:500]
    return sorted(re.findall(r"event at \d+", response.content.decode().split("<tbody>", 1)[1]))


def api_labels(api, auditor, query: dict) -> list[str]:
    response = api.as_user(auditor).get(API, query)
    assert response.status_code == 200, response.json()
    return sorted(e["object_label"] for e in response.json()["results"] if e["object_label"].startswith("event at"))


def input_of(response, name: str) -> str:
    match = re.search(rf'<input[^>]*name="{name}"[^>]*>', response.content.decode())
    assert match, name
    return match.group(0)


def test_from_and_until_are_date_and_time_pickers_with_a_visible_format(auditor_client):
    response = auditor_client.get(SEARCH)
    for name in ("since", "until"):
        widget = input_of(response, name)
        assert 'type="datetime-local"' in widget and 'step="1"' in widget
    html = response.content.decode()
    assert "From (UTC)" in html and "Until (UTC)" in html
    assert html.count('<small class="hint">YYYY-MM-DD HH:MM:SS in UTC, or with an offset (+02:00)</small>') == 2


def test_what_the_picker_sends_filters_as_the_same_moment_in_utc(auditor_client, api, auditor, sample):
    # A datetime-local picker sends minutes, or seconds with step=1, and no offset.
    page = auditor_client.get(SEARCH, {"since": "2024-03-02T09:00", "until": "2024-03-02T11:00:00"})
    assert shown_labels(page) == ["event at 10", "event at 9"]
    assert shown_labels(page) == api_labels(api, auditor, {"since": "2024-03-02T09:00", "until": "2024-03-02T11:00:00"})


@pytest.mark.parametrize(
    "since",
    [
        "2024-03-02T10:00:00Z",
        "2024-03-02T10:00:00+00:00",
        "2024-03-02T12:00:00+02:00",
        "2024-03-02T05:00-05:00",
        "2024-03-02T12:00:00 02:00",  # a '+' left unencoded in a query string arrives as a space
        "2024-03-02 10:00:00",
        "2024-03-02T10:00:00.000000Z",
    ],
)
def test_the_page_reads_every_moment_the_api_reads_and_shows_it_in_the_picker(
    auditor_client, api, auditor, sample, since
):
    page = auditor_client.get(SEARCH, {"since": since})
    assert (
        shown_labels(page)
        == api_labels(api, auditor, {"since": since})
        == ["event at 10", "event at 11", "event at 12"]
    )
    # The picker holds the moment it filtered on, in UTC, so submitting the form again asks the same question.
    assert 'value="2024-03-02T10:00:00"' in input_of(page, "since")


def test_a_date_alone_is_midnight_utc_on_the_page_as_in_the_api(auditor_client, api, auditor, sample):
    page = auditor_client.get(SEARCH, {"until": "2024-03-02"})
    assert shown_labels(page) == api_labels(api, auditor, {"until": "2024-03-02"}) == []
    assert 'value="2024-03-02T00:00:00"' in input_of(page, "until")


@pytest.mark.parametrize("bad", ["yesterday", "2024-03-02T10:00:00+16:00"])
def test_a_moment_the_api_refuses_is_an_error_on_the_page_with_the_text_kept(auditor_client, api, auditor, sample, bad):
    assert api.as_user(auditor).get(API, {"since": bad}).status_code == 400
    page = auditor_client.get(SEARCH, {"since": bad})
    assert page.status_code == 200
    assert '<span class="errors">' in page.content.decode()
    assert f'value="{bad}"' in input_of(page, "since")
