"""The embedded engines behind the run command and the test command's fallback are real servers."""

import dj_database_url
import psycopg
import pytest
import redis

from governance.devstack import _redacted, embedded_postgres, embedded_redis, scratch_directory


@pytest.fixture
def scratch():
    with scratch_directory("changeboard-test-") as path:
        yield path


def test_embedded_postgresql_serves_the_named_database_and_keeps_its_data(scratch):
    with embedded_postgres(scratch / "pg", "changeboard") as url:
        params = dj_database_url.parse(url)
        with psycopg.connect(host=params["HOST"], user=params["USER"], dbname=params["NAME"], autocommit=True) as c:
            c.execute("CREATE TABLE kept (value text)")
            c.execute("INSERT INTO kept VALUES ('still here')")
    with embedded_postgres(scratch / "pg", "changeboard") as url:  # a second run reuses the data folder
        params = dj_database_url.parse(url)
        with psycopg.connect(host=params["HOST"], user=params["USER"], dbname=params["NAME"]) as c:
            assert c.execute("SELECT value FROM kept").fetchone() == ("still here",)


def test_embedded_redis_answers_on_its_socket(scratch):
    with embedded_redis(scratch / "redis.db") as url:
        assert url.startswith("redis+socket://")
        client = redis.Redis(unix_socket_path=url.removeprefix("redis+socket://"))
        assert client.ping()
        client.set("k", "v")
        assert client.get("k") == b"v"


def test_urls_are_logged_without_their_password():
    assert _redacted("postgres://app:s3cret@db:5432/changeboard") == "postgres://app:***@db:5432/changeboard"
    assert _redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
