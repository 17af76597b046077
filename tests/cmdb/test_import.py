"""Importing an inventory (CSV or JSON) through the service, the API and `manage.py import_cmdb`."""

import json
import re
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from cmdb.models import ConfigurationItem, Relationship
from cmdb.services import inventory_from_document, inventory_import, inventory_parse
from governance.core.errors import Forbidden, InvalidInput
from tests.factories import link, make_ci, make_environment, make_team

pytestmark = pytest.mark.django_db

IMPORT = "/api/v1/cmdb/import/"

CIS_CSV = """name,type,owner_team,criticality,environment,tags,sox_scoped,attributes
payments-api,service,payments,1,prod,edge;pci,true,"{""runtime"": ""jvm""}"
payments-db,database,payments,1,prod,,yes,
search-api,service,search,3,,edge,false,
"""

RELATIONSHIPS_CSV = """source,target,type
payments-api,payments-db,depends_on
search-api,payments-api,connects_to
"""

DOCUMENT = {
    "cis": [
        {"name": "ledger", "type": "service", "owner_team": "payments", "criticality": 2, "tags": ["sox"],
         "attributes": {"language": "go"}},
        {"name": "ledger-db", "type": "database", "owner_team": "payments", "environment": "prod"},
    ],
    "relationships": [{"source": "ledger", "target": "ledger-db", "type": "depends_on"}],
}


@pytest.fixture
def estate(team):
    """The teams and environment the files refer to."""
    make_team("search", name="Search")
    make_environment("prod", 2, is_production=True)
    return team


def counts() -> tuple[int, int]:
    return ConfigurationItem.objects.count(), Relationship.objects.count()


def run(actor, *files: tuple[str, str]):
    records = []
    for name, text in files:
        records += inventory_parse(name, text)
    return inventory_import(actor=actor, records=records)


def import_errors(actor, *files: tuple[str, str]) -> list[dict]:
    with pytest.raises(InvalidInput) as raised:
        run(actor, *files)
    return raised.value.as_errors()


def summary(result) -> tuple[int, int, int, int, int]:
    return (result.cis_created, result.cis_updated, result.cis_unchanged, result.relationships_created,
            result.relationships_existing)


# Parsing


def test_a_csv_of_cis_is_read_with_its_line_numbers_counting_the_header_as_line_one():
    records = inventory_parse("cis.csv", CIS_CSV)
    assert [(r.kind, r.line, r.data["name"]) for r in records] == [
        ("ci", 2, "payments-api"), ("ci", 3, "payments-db"), ("ci", 4, "search-api")]
    assert records[0].data["tags"] == "edge;pci"
    assert records[0].location == "cis.csv line 2"


def test_a_csv_of_relationships_is_recognised_by_its_header():
    records = inventory_parse("edges.csv", RELATIONSHIPS_CSV.encode())
    assert [(r.kind, r.line, r.data["source"], r.data["target"]) for r in records] == [
        ("relationship", 2, "payments-api", "payments-db"), ("relationship", 3, "search-api", "payments-api")]


def test_a_csv_saved_with_a_byte_order_mark_is_read():
    records = inventory_parse("cis.csv", CIS_CSV.encode("utf-8-sig"))
    assert records[0].data["name"] == "payments-api"


def test_a_json_document_gives_records_located_by_list_and_index():
    records = inventory_parse("estate.json", json.dumps(DOCUMENT))
    assert [(r.kind, r.index, r.line) for r in records] == [("ci", 0, None), ("ci", 1, None), ("relationship", 0, None)]
    assert records[1].location == "estate.json cis[1]"
    assert records[2].location == "estate.json relationships[0]"


def test_an_already_decoded_document_gives_the_same_records():
    records = inventory_from_document("request", DOCUMENT)
    assert [r.data for r in records] == [*DOCUMENT["cis"], *DOCUMENT["relationships"]]


@pytest.mark.parametrize("text", ["name,kind,team\nx,service,payments\n", "", "hello\n"])
def test_a_csv_with_an_unknown_header_is_refused_naming_the_file_and_line_one(text):
    with pytest.raises(InvalidInput) as raised:
        inventory_parse("odd.csv", text)
    assert raised.value.field == "file"
    assert "odd.csv line 1" in raised.value.message


def test_malformed_json_is_refused_naming_the_file_and_the_line():
    with pytest.raises(InvalidInput) as raised:
        inventory_parse("estate.json", '{\n  "cis": [\n    {"name": "x",}\n  ]\n}')
    assert raised.value.field == "file"
    assert "estate.json line 3" in raised.value.message


@pytest.mark.parametrize("document", [[], {}, {"servers": []}, "cis"])
def test_a_json_document_of_the_wrong_shape_is_refused_naming_the_file(document):
    with pytest.raises(InvalidInput) as raised:
        inventory_from_document("estate.json", document)
    assert raised.value.field == "file"


def test_a_json_list_that_is_not_a_list_of_objects_is_refused_naming_the_list():
    with pytest.raises(InvalidInput) as raised:
        inventory_from_document("estate.json", {"cis": {"name": "x"}})
    assert raised.value.field == "cis"
    with pytest.raises(InvalidInput) as raised:
        inventory_from_document("estate.json", {"relationships": ["a->b"]})
    assert raised.value.field == "relationships"
    assert "relationships[0]" in raised.value.message


def test_a_file_that_is_not_utf8_is_refused_naming_the_file():
    with pytest.raises(InvalidInput) as raised:
        inventory_parse("cis.csv", "name,type,owner_team\ncafé,service,payments\n".encode("latin-1"))
    assert raised.value.field == "file"
    assert "cis.csv" in raised.value.message


def test_a_csv_that_the_csv_reader_cannot_read_is_refused_naming_the_file_and_line():
    huge = "x" * 200_000  # over the csv module's field size limit
    with pytest.raises(InvalidInput) as raised:
        inventory_parse("cis.csv", f"name,type,owner_team,description\napi,service,payments,{huge}\n")
    assert raised.value.field == "file"
    assert "cis.csv line 2" in raised.value.message


# Importing


def test_importing_csv_files_creates_cis_and_relationships(admin_user, estate):
    result = run(admin_user, ("cis.csv", CIS_CSV), ("edges.csv", RELATIONSHIPS_CSV))
    assert summary(result) == (3, 0, 0, 2, 0)
    api = ConfigurationItem.objects.get(name="payments-api")
    assert (api.ci_type, api.criticality, api.owner_team.slug) == ("service", 1, "payments")
    assert api.environment.name == "prod"
    assert api.tags == ["edge", "pci"]
    assert api.sox_scoped is True
    assert api.attributes == {"runtime": "jvm"}
    db = ConfigurationItem.objects.get(name="payments-db")
    assert (db.ci_type, db.tags, db.sox_scoped, db.attributes) == ("database", [], True, {})
    search = ConfigurationItem.objects.get(name="search-api")
    assert (search.environment, search.sox_scoped, search.owner_team.slug) == (None, False, "search")
    assert set(Relationship.objects.values_list("source__name", "target__name", "rel_type")) == {
        ("payments-api", "payments-db", "depends_on"), ("search-api", "payments-api", "connects_to")}


def test_the_relationships_file_may_come_before_the_cis_it_names(admin_user, estate):
    result = run(admin_user, ("edges.csv", RELATIONSHIPS_CSV), ("cis.csv", CIS_CSV))
    assert summary(result) == (3, 0, 0, 2, 0)


def test_importing_a_json_document_creates_cis_and_relationships(admin_user, estate):
    result = run(admin_user, ("estate.json", json.dumps(DOCUMENT)))
    assert summary(result) == (2, 0, 0, 1, 0)
    ledger = ConfigurationItem.objects.get(name="ledger")
    assert (ledger.criticality, ledger.tags, ledger.attributes) == (2, ["sox"], {"language": "go"})
    assert ConfigurationItem.objects.get(name="ledger-db").environment.name == "prod"
    assert Relationship.objects.filter(source=ledger, target__name="ledger-db", rel_type="depends_on").exists()


def test_importing_the_same_files_twice_changes_nothing_the_second_time(admin_user, estate):
    files = (("cis.csv", CIS_CSV), ("edges.csv", RELATIONSHIPS_CSV), ("estate.json", json.dumps(DOCUMENT)))
    run(admin_user, *files)
    before = counts()
    stamps = dict(ConfigurationItem.objects.values_list("name", "updated_at"))
    assert summary(run(admin_user, *files)) == (0, 0, 5, 0, 3)
    assert counts() == before == (5, 3)
    assert dict(ConfigurationItem.objects.values_list("name", "updated_at")) == stamps


def test_tags_in_another_order_count_as_unchanged(admin_user, estate):
    run(admin_user, ("cis.csv", CIS_CSV))
    reordered = CIS_CSV.replace("edge;pci", '"pci, edge"')
    assert summary(run(admin_user, ("cis.csv", reordered))) == (0, 0, 3, 0, 0)


def test_a_changed_field_counts_as_updated_and_is_saved(admin_user, estate):
    run(admin_user, ("cis.csv", CIS_CSV), ("edges.csv", RELATIONSHIPS_CSV))
    changed = CIS_CSV.replace("search-api,service,search,3", "search-api,service,search,2")
    result = run(admin_user, ("cis.csv", changed), ("edges.csv", RELATIONSHIPS_CSV))
    assert summary(result) == (0, 1, 2, 0, 2)
    assert ConfigurationItem.objects.get(name="search-api").criticality == 2
    assert counts() == (3, 2)


def test_an_import_updates_a_ci_that_exists_under_another_case_instead_of_duplicating_it(admin_user, estate):
    make_ci("Payments-API", team=estate, criticality=3)
    result = run(admin_user, ("cis.csv", CIS_CSV))
    assert (result.cis_created, result.cis_updated) == (2, 1)
    assert ConfigurationItem.objects.filter(name__iexact="payments-api").count() == 1
    assert ConfigurationItem.objects.get(name__iexact="payments-api").criticality == 1


def test_an_existing_relationship_is_counted_and_not_added_again(admin_user, estate):
    run(admin_user, ("cis.csv", CIS_CSV))
    link(ConfigurationItem.objects.get(name="payments-api"), ConfigurationItem.objects.get(name="payments-db"))
    result = run(admin_user, ("edges.csv", RELATIONSHIPS_CSV))
    assert (result.relationships_created, result.relationships_existing) == (1, 1)
    assert Relationship.objects.count() == 2


def test_relationships_may_name_cis_in_any_case(admin_user, estate):
    run(admin_user, ("cis.csv", CIS_CSV))
    result = run(admin_user, ("edges.csv", "source,target,type\nPAYMENTS-API,Payments-DB,depends_on\n"))
    assert result.relationships_created == 1
    edge = Relationship.objects.get()
    assert (edge.source.name, edge.target.name) == ("payments-api", "payments-db")


# Errors: located, all reported, and nothing written


def test_an_error_names_the_file_the_csv_line_and_the_field(admin_user, estate):
    bad = CIS_CSV.replace("payments-db,database,payments,1", "payments-db,database,payments,9")
    errors = import_errors(admin_user, ("cis.csv", bad))
    assert len(errors) == 1
    error = errors[0]
    assert (error["file"], error["line"], error["field"]) == ("cis.csv", 3, "criticality")
    assert error["message"].startswith("cis.csv line 3: criticality:")


def test_nothing_is_written_from_a_file_with_one_bad_line(admin_user, estate):
    before = counts()
    bad = CIS_CSV.replace("payments-db,database,payments", "payments-db,mainframe,payments")
    errors = import_errors(admin_user, ("cis.csv", bad), ("edges.csv", RELATIONSHIPS_CSV))
    assert [(e["line"], e["field"]) for e in errors if e["file"] == "cis.csv"] == [(3, "type")]
    assert counts() == before == (0, 0)


def test_nothing_is_written_when_the_bad_line_is_the_last_one_after_good_ones(admin_user, estate):
    bad = CIS_CSV + "broken name,service,payments,2,,,,\n"
    errors = import_errors(admin_user, ("cis.csv", bad))
    assert [(e["file"], e["line"], e["field"]) for e in errors] == [("cis.csv", 5, "name")]
    assert counts() == (0, 0)


def test_nothing_is_written_when_only_the_last_relationship_is_bad(admin_user, estate):
    run(admin_user, ("cis.csv", CIS_CSV))
    edges = RELATIONSHIPS_CSV + "payments-db,payments-db,depends_on\n"
    errors = import_errors(admin_user, ("edges.csv", edges))
    assert [(e["file"], e["line"]) for e in errors] == [("edges.csv", 4)]
    assert counts() == (3, 0)


def test_a_bad_update_leaves_existing_cis_as_they_were(admin_user, estate):
    run(admin_user, ("cis.csv", CIS_CSV))
    changed = CIS_CSV.replace("search-api,service,search,3", "search-api,service,search,2") + (
        "payments-api,service,nobody,1,,,,\n")
    errors = import_errors(admin_user, ("cis.csv", changed))
    assert [(e["line"], e["field"]) for e in errors] == [(5, "name")]  # the repeated CI
    assert ConfigurationItem.objects.get(name="search-api").criticality == 3


def test_every_error_of_every_file_is_reported(admin_user, estate):
    cis = """name,type,owner_team,criticality,tags,attributes
good-one,service,payments,2,,
bad-team,service,nobody,2,,
bad-tag,service,payments,2,Not A Tag,
bad-attributes,service,payments,2,,{not json}
bad-everything,mainframe,payments,7,,
"""
    edges = "source,target,type\ngood-one,ghost,depends_on\ngood-one,bad-team,likes\n"
    errors = import_errors(admin_user, ("cis.csv", cis), ("edges.csv", edges))
    located = {(e["file"], e["line"], re.split(r"[.\[]", e["field"] or "")[0]) for e in errors}
    assert {("cis.csv", 3, "owner_team"), ("cis.csv", 4, "tags"), ("cis.csv", 5, "attributes"),
            ("cis.csv", 6, "type"), ("cis.csv", 6, "criticality"),
            ("edges.csv", 2, "target"), ("edges.csv", 3, "type")} <= located
    assert all(e["message"].startswith(f"{e['file']} line {e['line']}: ") for e in errors)
    assert counts() == (0, 0)


def test_a_ci_listed_twice_in_one_import_is_an_error(admin_user, estate):
    again = "name,type,owner_team\nPayments-Api,service,payments\n"
    errors = import_errors(admin_user, ("a.csv", CIS_CSV), ("b.csv", again))
    assert [(e["file"], e["line"], e["field"], e["code"]) for e in errors] == [("b.csv", 2, "name", "duplicate")]
    assert counts() == (0, 0)


def test_json_errors_are_located_by_list_and_index(admin_user, estate):
    document = {"cis": [{"name": "ok", "type": "service", "owner_team": "payments"},
                        {"name": "bad", "type": "service", "owner_team": "payments", "attributes": [1, 2]}],
                "relationships": [{"source": "ok", "target": "ok", "type": "depends_on"}]}
    errors = import_errors(admin_user, ("estate.json", json.dumps(document)))
    assert {(e["file"], e["index"], e["line"]) for e in errors} == {("estate.json", 1, None), ("estate.json", 0, None)}
    attribute_error = next(e for e in errors if e["field"] == "attributes")
    assert attribute_error["message"].startswith("estate.json cis[1]: attributes:")
    assert any(e["message"].startswith("estate.json relationships[0]:") for e in errors)
    assert counts() == (0, 0)


def test_a_requester_cannot_import_and_nothing_is_written(requester, estate):
    with pytest.raises(Forbidden):
        run(requester, ("cis.csv", CIS_CSV))
    assert counts() == (0, 0)


# The API


def test_admin_imports_a_json_body_through_the_api(api, admin_user, estate):
    response = api.as_user(admin_user).post(IMPORT, DOCUMENT, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"cis_created": 2, "cis_updated": 0, "cis_unchanged": 0,
                               "relationships_created": 1, "relationships_existing": 0}
    assert counts() == (2, 1)
    again = api.as_user(admin_user).post(IMPORT, DOCUMENT, format="json").json()
    assert (again["cis_unchanged"], again["relationships_existing"]) == (2, 1)
    assert counts() == (2, 1)


def test_admin_uploads_csv_files_through_the_api(api, admin_user, estate):
    files = [SimpleUploadedFile("cis.csv", CIS_CSV.encode(), "text/csv"),
             SimpleUploadedFile("edges.csv", RELATIONSHIPS_CSV.encode(), "text/csv")]
    response = api.as_user(admin_user).post(IMPORT, {"files": files}, format="multipart")
    assert response.status_code == 200, response.content
    assert (response.json()["cis_created"], response.json()["relationships_created"]) == (3, 2)
    assert counts() == (3, 2)


def test_an_api_import_with_a_bad_line_is_a_400_locating_it_and_writes_nothing(api, admin_user, estate):
    bad = CIS_CSV + "last-one,service,payments,0,,,,\n"
    response = api.as_user(admin_user).post(
        IMPORT, {"files": [SimpleUploadedFile("cis.csv", bad.encode())]}, format="multipart")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(e["file"], e["line"], e["field"]) for e in errors] == [("cis.csv", 5, "criticality")]
    assert "cis.csv line 5" in errors[0]["message"]
    assert counts() == (0, 0)


def test_an_api_json_body_with_errors_reports_them_all(api, admin_user, estate):
    document = {"cis": [{"name": "a b", "type": "service", "owner_team": "payments"},
                        {"name": "ok", "type": "thing", "owner_team": "payments"}]}
    response = api.as_user(admin_user).post(IMPORT, document, format="json")
    assert response.status_code == 400
    assert [(e["file"], e["index"], e["field"]) for e in response.json()["errors"]] == [
        ("request", 0, "name"), ("request", 1, "type")]
    assert counts() == (0, 0)


@pytest.mark.parametrize(("name", "content"), [
    ("estate.json", b'{"cis": [}'),
    ("cis.csv", b"hostname,kind\nx,y\n"),
    ("cis.csv", "name,type,owner_team\ncaf\xe9,service,payments\n".encode("latin-1")),
])
def test_an_unreadable_upload_is_a_400_naming_file(api, admin_user, estate, name, content):
    response = api.as_user(admin_user).post(
        IMPORT, {"files": [SimpleUploadedFile(name, content)]}, format="multipart")
    assert response.status_code == 400, response.content
    assert [e["field"] for e in response.json()["errors"]] == ["file"]
    assert name in response.json()["errors"][0]["message"]


@pytest.mark.parametrize("body", [[], {}, {"servers": []}])
def test_an_api_json_body_of_the_wrong_shape_is_a_400_naming_file(api, admin_user, body):
    response = api.as_user(admin_user).post(IMPORT, body, format="json")
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["file"]


def test_a_multipart_import_without_files_is_a_400_naming_files(api, admin_user):
    response = api.as_user(admin_user).post(IMPORT, {"other": "x"}, format="multipart")
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["files"]


def test_a_requester_cannot_import_through_the_api_and_nothing_is_written(api, requester, estate):
    response = api.as_user(requester).post(IMPORT, DOCUMENT, format="json")
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "permission_denied"
    response = api.as_user(requester).post(IMPORT, {"files": [SimpleUploadedFile("cis.csv", CIS_CSV.encode())]},
                                           format="multipart")
    assert response.status_code == 403
    assert counts() == (0, 0)


def test_an_outsider_and_anonymous_cannot_import(api, outsider, estate):
    assert api.post(IMPORT, DOCUMENT, format="json").status_code == 401
    assert api.as_user(outsider).post(IMPORT, DOCUMENT, format="json").status_code == 403
    assert counts() == (0, 0)


# The command


@pytest.fixture
def files(tmp_path):
    (tmp_path / "cis.csv").write_text(CIS_CSV)
    (tmp_path / "edges.csv").write_text(RELATIONSHIPS_CSV)
    (tmp_path / "estate.json").write_text(json.dumps(DOCUMENT))
    return tmp_path


def command(*args: str) -> str:
    out = StringIO()
    call_command("import_cmdb", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_the_command_imports_files_as_the_given_user_and_is_safe_to_repeat(admin_user, estate, files):
    paths = [str(files / n) for n in ("cis.csv", "edges.csv", "estate.json")]
    out = command(*paths, "--as", admin_user.username)
    assert "CIs: 5 created, 0 updated, 0 unchanged; relationships: 3 created, 0 existing." in out
    assert counts() == (5, 3)
    out = command(*paths, "--as", admin_user.username)
    assert "CIs: 0 created, 0 updated, 5 unchanged; relationships: 0 created, 3 existing." in out
    assert counts() == (5, 3)


def test_the_command_reports_every_located_error_and_writes_nothing(admin_user, estate, files):
    (files / "cis.csv").write_text(CIS_CSV + "tail,service,nobody,2,,,,\n")
    err = StringIO()
    with pytest.raises(CommandError, match="Nothing was imported"):
        call_command("import_cmdb", str(files / "cis.csv"), str(files / "edges.csv"), "--as", admin_user.username,
                     stdout=StringIO(), stderr=err)
    assert "cis.csv line 5: owner_team:" in err.getvalue()
    assert counts() == (0, 0)


def test_the_command_refuses_a_user_without_permission(requester, estate, files):
    with pytest.raises(CommandError):
        command(str(files / "cis.csv"), "--as", requester.username)
    assert counts() == (0, 0)


def test_the_command_refuses_an_unknown_user_or_a_missing_file(admin_user, estate, files):
    with pytest.raises(CommandError, match="nobody"):
        command(str(files / "cis.csv"), "--as", "nobody")
    with pytest.raises(CommandError, match="no such file"):
        command(str(files / "cis.csv"), str(files / "missing.csv"), "--as", admin_user.username)
    assert counts() == (0, 0)
