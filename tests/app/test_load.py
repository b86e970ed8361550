"""A bounded load test: 16 users on loopback for 20 s through gradio_client, no errors."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_sixteen_users_for_twenty_seconds_get_answers_without_errors():
    from kzqa.bench.speed import load_test

    run = load_test((16,), seconds=20)["16"]
    assert run["errors"] == 0, run["error_samples"]
    assert run["answers"] >= 16  # every user got at least one answer
