"""The Google client libraries, imported on first use.

Importing `google.api_core` alone costs about 90 ms and `google.cloud.storage` as much again:
an instance whose events are all no-ops decided from the event itself never needs them, so no
adapter module imports them at its top. An `except` clause names its class through these
accessors, which Python evaluates only when an exception actually arrives there.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def errors() -> Any:
    """`google.api_core.exceptions`."""
    from google.api_core import exceptions

    return exceptions


@functools.cache
def retries() -> Any:
    """`google.api_core.retry`."""
    from google.api_core import retry

    return retry
