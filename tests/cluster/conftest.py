"""The cluster tests: a real NATS server and worker processes (tests/cluster_fixtures.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("nats", reason="the cluster extra (nats-py) is not installed")

from tests.cluster_fixtures import coordinator, workers  # noqa: F401
