"""Makes each test's outcome visible to its fixtures (a failed UI test saves a screenshot)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report
