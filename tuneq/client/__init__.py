"""The tuneq HTTP client and the CLI commands built on it (``tuneq submit``, ``tuneq status``, …)."""

from tuneq.client.http import ApiClient, ApiError, StreamMessage

__all__ = ["ApiClient", "ApiError", "StreamMessage"]
