"""Auditors' notes on exceptions: only auditors write them (an administrator's word is not an auditor's finding),
bad input is a 400 naming the field, and every note is in the ledger with its author."""

import pytest
from django.urls import reverse

from governance.core.errors import Forbidden, InvalidInput
from governance.evidence.notes import auditor_note_add, notes_for
from governance.models import AuditorNote
from tests.factories import sealed

pytestmark = pytest.mark.django_db

KEY = "approval_after_start:DEP0000045"
NOTES = "/api/v1/audit/notes/"


def test_an_auditor_adds_a_note_stripped_and_it_is_in_the_ledger(auditor):
    note = auditor_note_add(actor=auditor, exception_key=KEY, text="  Approved by phone; see ticket 88.\n")
    assert note.text == "Approved by phone; see ticket 88." and note.author == auditor
    [event] = sealed(object_type="governance.auditornote", action="create")
    assert event.object_id == str(note.pk) and event.object_label == KEY
    assert event.changes["text"]["after"] == "Approved by phone; see ticket 88."


@pytest.mark.parametrize("persona", ["requester", "cab_member", "release_manager", "admin_user", "outsider"])
def test_no_one_but_an_auditor_writes_a_note(request, persona):
    with pytest.raises(Forbidden):
        auditor_note_add(actor=request.getfixturevalue(persona), exception_key=KEY, text="My view")
    assert not AuditorNote.objects.exists()


@pytest.mark.parametrize(("key", "text", "field"), [
    ("", "text", "exception_key"), ("no-colon", "text", "exception_key"), ("kind:", "text", "exception_key"),
    ("Kind:DEP1", "text", "exception_key"), ("kind:DEP\x001", "text", "exception_key"),
    ("kind:" + "D" * 200, "text", "exception_key"),
    (KEY, "", "text"), (KEY, "   \n", "text"), (KEY, "x" * 5001, "text"), (KEY, "a\x00b", "text"),
])
def test_bad_input_is_refused_naming_the_field(auditor, key, text, field):
    with pytest.raises(InvalidInput) as refused:
        auditor_note_add(actor=auditor, exception_key=key, text=text)
    assert refused.value.field == field
    assert not AuditorNote.objects.exists()


def test_a_note_of_5000_characters_is_kept_whole(auditor):
    assert len(auditor_note_add(actor=auditor, exception_key=KEY, text="x" * 5000).text) == 5000


def test_notes_for_gives_each_key_its_notes_oldest_first(auditor):
    first = auditor_note_add(actor=auditor, exception_key=KEY, text="one")
    other = auditor_note_add(actor=auditor, exception_key="self_approval:CHG0000001", text="other")
    second = auditor_note_add(actor=auditor, exception_key=KEY, text="two")
    assert notes_for([KEY, "self_approval:CHG0000001", "outside_window:DEP1"]) == {
        KEY: [first, second], "self_approval:CHG0000001": [other], "outside_window:DEP1": []}


def test_the_api_takes_an_auditors_note_and_lists_them_by_exception(api, auditor):
    client = api.as_user(auditor)
    response = client.post(NOTES, {"exception_key": KEY, "text": " Looked at it "}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["text"] == "Looked at it" and response.json()["author"] == "auditor"
    [event] = sealed(object_type="governance.auditornote", action="create")
    assert event.actor_kind == "token" and event.actor_id == auditor.pk and event.object_label == KEY
    client.post(NOTES, {"exception_key": "self_approval:CHG0000001", "text": "other"}, format="json")
    listed = client.get(NOTES, {"exception_key": KEY}).json()
    assert [note["text"] for note in listed] == ["Looked at it"]
    assert len(client.get(NOTES).json()) == 2


@pytest.mark.parametrize("persona", ["requester", "cab_member", "release_manager", "admin_user"])
def test_the_api_refuses_a_note_from_anyone_but_an_auditor(api, request, persona):
    response = api.as_user(request.getfixturevalue(persona)).post(NOTES, {"exception_key": KEY, "text": "mine"},
                                                                  format="json")
    assert response.status_code == 403
    assert not AuditorNote.objects.exists()


def test_an_administrator_reads_the_notes_and_a_requester_does_not(api, admin_user, requester):
    assert api.as_user(admin_user).get(NOTES).status_code == 200
    assert api.as_user(requester).get(NOTES).status_code == 403


@pytest.mark.parametrize(("body", "field"), [
    ({"exception_key": "nope", "text": "t"}, "exception_key"), ({"text": "t"}, "exception_key"),
    ({"exception_key": KEY, "text": "   "}, "text"), ({"exception_key": KEY}, "text"),
    ({"exception_key": KEY, "text": "x" * 5001}, "text"), ({"exception_key": KEY, "text": "a\x00"}, "text"),
])
def test_the_api_answers_bad_input_with_a_400_naming_the_field(api, auditor, body, field):
    response = api.as_user(auditor).post(NOTES, body, format="json")
    assert response.status_code == 400
    assert field in [error["field"] for error in response.json()["errors"]], response.json()
    assert not AuditorNote.objects.exists()


def test_the_api_refuses_a_malformed_key_to_filter_by(api, auditor):
    response = api.as_user(auditor).get(NOTES, {"exception_key": "bad key"})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "exception_key"


def test_the_fragment_shows_the_notes_and_lets_an_auditor_add_one(client, auditor):
    client.force_login(auditor)
    url = reverse("evidence:exception_notes", args=[KEY])
    page = client.get(url)
    assert page.status_code == 200 and b"No notes on this exception yet." in page.content
    assert b'name="text"' in page.content
    added = client.post(url, {"text": "Checked with the CAB chair."}, HTTP_HX_REQUEST="true")
    assert added.status_code == 200 and b"Checked with the CAB chair." in added.content
    assert AuditorNote.objects.get().author == auditor
    blank = client.post(url, {"text": "  "})
    assert blank.status_code == 400 and b"A note needs some text." in blank.content
    assert AuditorNote.objects.count() == 1


def test_the_fragment_lets_an_administrator_read_but_not_add(client, admin_user, auditor):
    auditor_note_add(actor=auditor, exception_key=KEY, text="Seen.")
    client.force_login(admin_user)
    url = reverse("evidence:exception_notes", args=[KEY])
    page = client.get(url)
    assert page.status_code == 200 and b"Seen." in page.content and b'name="text"' not in page.content
    assert client.post(url, {"text": "Mine"}).status_code == 403
    assert AuditorNote.objects.count() == 1


def test_the_fragment_is_closed_to_a_requester(client, requester):
    client.force_login(requester)
    assert client.get(reverse("evidence:exception_notes", args=[KEY])).status_code == 403
