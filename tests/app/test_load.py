"""Bounded load tests on loopback: 16 users through gradio_client for 20 s, 16 REST clients for 10 s; no errors."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_sixteen_users_for_twenty_seconds_get_answers_without_errors():
    from kzqa.bench.speed import load_test

    run = load_test((16,), seconds=20)["16"]
    assert run["errors"] == 0, run["error_samples"]
    assert run["answers"] >= 16  # every user got at least one answer


def test_sixteen_rest_clients_for_ten_seconds_get_answers_and_no_errors():
    """The same through the REST API: each client its own API key and rate limit."""
    from kzqa.bench.speed import load_test

    run = load_test((16,), seconds=10, via="rest")["16"]
    assert run["errors"] == 0, run["error_samples"]
    assert run["answers"] > 16 and run["via"] == "rest"
