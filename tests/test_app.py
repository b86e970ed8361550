"""The running app, called over HTTP by gradio_client."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(running_app):
    from gradio_client import Client

    return Client(running_app, verbose=False)


def test_app_answers_over_http(client):
    result = client.predict("How tall is the Bayterek tower?", 5, "hybrid", api_name="/ask")
    assert not result["abstained"] and "97 meters" in result["text"] and "[1]" in result["text"]
    cite = result["citations"][0]
    assert {"doc_id", "title", "section", "passage_id", "start", "end", "score"} <= set(cite)
