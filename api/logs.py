"""Logging: text or JSON lines with stable fields; secrets are redacted before output."""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

# Fields an operator follows an invoice by, from API request to webhook delivery.
FIELDS = (
    "request_id",
    "network",
    "block",
    "invoice_id",
    "event_id",
    "endpoint_id",
    "store_id",
    "status",
    "route",
)
# Set by the HTTP middleware: every line logged while serving a request carries its id.
REQUEST_ID: ContextVar[str | None] = ContextVar("chainpay_request_id", default=None)
_SECRET = re.compile(r"(cpk_|whsec_)[A-Za-z0-9_\-]{8,}|(Bearer\s+)[^\s\"']+")


def redact(text: str) -> str:
    return _SECRET.sub(lambda m: (m.group(1) or m.group(2) or "") + "[redacted]", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "cpk_" not in message and "whsec_" not in message and "Bearer" not in message:
            return True  # the common case: skip the regex on every access-log line
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is None and name == "request_id":
                value = REQUEST_ID.get()
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(fmt: str = "text", level: str = "info") -> None:
    # Neither format shows the source line, thread or process: skip collecting them for every
    # record (the logging HOWTO's "Optimization" section; one access-log line per request).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
