"""Logging: text or JSON lines with stable fields; secrets are redacted before output."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import threading
import time
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
        if "cpk_" in message or "whsec_" in message or "Bearer" in message:
            message = redact(message)
        record.msg, record.args = message, None  # formatted once: the formatter reuses it
        return True


class TextFormatter(logging.Formatter):
    """`2026-11-24 12:00:00,123 INFO name: message`, the date formatted once per second."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(record.created))
        return f"{self._stamp},{int(record.msecs):03d}"


class BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Lines go to a buffer flushed every `interval` seconds, warnings and errors at once.

    One write system call per access-log line was a measurable share of the event loop's
    time (and a chance for another thread to take the GIL); like a web server's buffered
    access log, lines now reach the file at most `interval` late. `logging.shutdown` (at
    exit) flushes what is left.
    """

    def __init__(self, fd: int, interval: float = 0.25) -> None:
        sys.stderr.flush()  # what was printed before comes first
        raw = io.FileIO(fd, "w", closefd=False)
        stream = io.TextIOWrapper(
            io.BufferedWriter(raw, buffer_size=1 << 16), encoding="utf-8", errors="replace"
        )
        super().__init__(stream)
        self._interval = interval
        self._closed = threading.Event()
        threading.Thread(target=self._flush_forever, name="log-flush", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                self.stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.flush()
        self._closed.set()
        super().close()

    def _flush_forever(self) -> None:
        while not self._closed.wait(self._interval):
            self.flush()


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
    handler: logging.Handler
    try:
        handler = BatchedStreamHandler(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):  # stderr is not a file (embedded, captured)
        handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
