"""Connection strings without their secrets: parsing, rendering and scrubbing."""

from __future__ import annotations

import pytest

from kzqa.stores.redaction import describe, is_connection_string, parse, remember, scrub, secrets_of

# (connection string, its password, what describe() shows)
CASES = [
    ("postgresql://kzqa:s3cret-pw@127.0.0.1:5433/kzqa", "s3cret-pw", "postgresql://kzqa:***@127.0.0.1:5433/kzqa"),
    ("postgresql://kzqa@db.example:5432/kzqa?password=q5tr1ng-pw&sslmode=require", "q5tr1ng-pw",
     "postgresql://kzqa:***@db.example:5432/kzqa"),
    ("postgresql://kzqa:sl/ash#hash@127.0.0.1/kzqa", "sl/ash#hash", "postgresql://kzqa:***@127.0.0.1/kzqa"),
    ("postgresql://kzqa:at@sign@127.0.0.1:5499/kzqa", "at@sign", "postgresql://kzqa:***@127.0.0.1:5499/kzqa"),
    ("postgresql://kzqa:p%40ss%2Fw0rd@127.0.0.1/kzqa", "p@ss/w0rd", "postgresql://kzqa:***@127.0.0.1/kzqa"),
    ("host=127.0.0.1 port=5499 dbname=kzqa user=kzqa password=kw-s3cret", "kw-s3cret",
     "postgresql://kzqa:***@127.0.0.1:5499/kzqa"),
    ("host=127.0.0.1 dbname=kzqa user=kzqa password='quoted s3cret'", "quoted s3cret",
     "postgresql://kzqa:***@127.0.0.1/kzqa"),
]


@pytest.mark.parametrize("url, password, shown", CASES)
def test_parse_finds_the_password_and_describe_never_shows_it(url, password, shown):
    assert is_connection_string(url)
    assert parse(url)["password"] == password
    assert describe(url) == shown and password not in describe(url)


@pytest.mark.parametrize("url, password, shown", CASES)
def test_scrub_hides_the_password_and_its_pieces_in_any_text(url, password, shown):
    remember(url)
    host_error = f'failed to resolve host "{password.split("@")[-1]}@127.0.0.1"'  # libpq cut at the first @
    for text in (f"cannot connect to {url}: refused", host_error, f"password={password}"):
        out = scrub(text)
        assert password not in out
        assert all(piece not in out for piece in secrets_of(url))


def test_a_url_without_password_is_shown_as_is_and_nothing_is_hidden():
    assert describe("postgresql://127.0.0.1/kzqa") == "postgresql://127.0.0.1/kzqa"
    assert secrets_of("postgresql://kzqa@127.0.0.1/kzqa") == set()
    assert scrub("kzqa at 127.0.0.1") == "kzqa at 127.0.0.1"


def test_paths_and_plain_words_are_not_connection_strings():
    assert not is_connection_string("/tmp/feedback.sqlite3") and not is_connection_string("mysql://x/db")
    assert not is_connection_string(None)
