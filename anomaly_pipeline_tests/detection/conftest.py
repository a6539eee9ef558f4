"""A real detector server on 127.0.0.1 (free port, uvicorn in a thread) for the HTTP tests."""

from __future__ import annotations

import pytest

from anomaly_pipeline.detection.server import BackgroundServer, create_app

TEST_KEY = "test-key-0123456789abcdef"
SMALL_BODY_LIMIT = 64 * 1024


@pytest.fixture(scope="session")
def detector_server():
    """Requires TEST_KEY; bodies over SMALL_BODY_LIMIT bytes are refused with 413."""
    with BackgroundServer(create_app(api_key=TEST_KEY, max_body_bytes=SMALL_BODY_LIMIT)) as server:
        yield server


@pytest.fixture(scope="session")
def open_detector_server():
    """No key configured, default body limit."""
    with BackgroundServer(create_app(api_key="")) as server:
        yield server
