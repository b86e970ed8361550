"""The running app's named endpoints, called over HTTP by gradio_client."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(running_app):
    from gradio_client import Client

    return Client(running_app, verbose=False)


def test_ask_endpoint(client):
    result = client.predict("How tall is the Bayterek tower?", 5, "hybrid", api_name="/ask")
    assert result["status"] == "answered" and not result["abstained"]
    assert "97 meters" in result["text"] and "[1]" in result["text"]
    cite = result["citations"][0]
    assert {"doc_id", "title", "section", "passage_id", "start", "end", "score", "highlights"} <= set(cite)
    s, e = cite["highlights"][0]
    assert cite["text"][s:e] in result["text"]


def test_ask_endpoint_abstains(client):
    result = client.predict("What is the capital of Peru?", 5, "hybrid", api_name="/ask")
    assert result["status"] == "not_covered"
    assert result["abstained"] and result["citations"] == [] and result["related"]


def test_ask_endpoint_carries_the_partial_state(client):
    result = client.predict("How much did CNPC pay to acquire PetroKazakhstan in 2005?", 5, "hybrid", api_name="/ask")
    assert result["status"] == "partial" and result["abstained"]
    assert result["summary"].startswith("The documents discuss") and result["citations"]


def test_search_endpoint(client):
    result = client.predict("Atajurt Eriktileri", 3, "hybrid", api_name="/search")
    hits = result["hits"]
    assert len(hits) == 3 and "Atajurt" in hits[0]["text"]
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]


def test_bad_input_is_a_clear_error(client):
    with pytest.raises(Exception, match="empty"):
        client.predict("   ", 5, "hybrid", api_name="/ask")
    with pytest.raises(Exception, match="unknown mode"):
        client.predict("Bayterek", 5, "telepathy", api_name="/search")


def test_page_binds_loopback_only(running_app):
    assert running_app.startswith("http://127.0.0.1:")
