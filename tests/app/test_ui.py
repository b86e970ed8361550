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


@pytest.mark.parametrize("data, says", [
    (["Bayterek", "5", "hybrid"], "k must be a whole number"),
    (["Bayterek", 2.5, "hybrid"], "k must be a whole number"),
    (["Bayterek", None, "hybrid"], "k must be a whole number"),
    (["Bayterek", 5, 123], "unknown mode"),
    (["\ud800\u0000", 5, "hybrid"], "empty"),
    ([None, 5, "hybrid"], "must be text"),
])
def test_bad_http_requests_get_the_reason_never_internal_text(running_app, data, says):
    import json

    import httpx

    for endpoint in ("ask", "search"):
        body = json.dumps({"data": data}, ensure_ascii=True)  # a lone surrogate travels as the escape \ud800
        response = httpx.post(f"{running_app}gradio_api/run/{endpoint}", content=body,
                              headers={"Content-Type": "application/json"}, timeout=60)
        text = response.text
        assert says in text, text
        assert "Traceback" not in text and "TypeError" not in text and "AttributeError" not in text


def test_a_whole_float_k_from_json_is_accepted(running_app):
    import httpx

    response = httpx.post(f"{running_app}gradio_api/run/search", json={"data": ["Bayterek tower", 3.0, "hybrid"]},
                          timeout=60)
    assert response.status_code == 200 and len(response.json()["data"][0]["hits"]) == 3
