"""One Chart-IMG stub per test session, blank again for every test that uses it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.chart_img_stub import ChartImgStub
from tests.test_deploy_scripts import fakes  # noqa: F401  (the deploy tests' fake gcloud)


@pytest.fixture(scope="session")
def chart_img_stub_server() -> Iterator[ChartImgStub]:
    with ChartImgStub() as server:
        yield server


@pytest.fixture
def stub(chart_img_stub_server: ChartImgStub) -> Iterator[ChartImgStub]:
    """The session stub, reset before and after the test (no keys, no script, nothing seen)."""
    chart_img_stub_server.reset()
    yield chart_img_stub_server
    chart_img_stub_server.reset()
