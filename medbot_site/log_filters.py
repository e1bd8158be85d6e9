"""Logging filters named in settings.LOGGING."""

from __future__ import annotations

import logging


class WithoutTraceback(logging.Filter):
    """Keeps a record's message and drops its traceback: a request with a Host header we do not
    serve is logged by Django with the whole stack, forty lines for each bot that probes the server
    by its IP address. The message says all there is to know."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True
