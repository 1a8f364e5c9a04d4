"""The batched log handler: errors reach the file at once, other lines within the interval."""

from __future__ import annotations

import logging
import os
import select

from api.logs import BatchedStreamHandler, RedactingFilter, TextFormatter


def record(level: int, message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("chainpay.test", level, __file__, 1, message, args, None)


def readable(fd: int, within: float) -> bytes:
    ready, _, _ = select.select([fd], [], [], within)
    return os.read(fd, 65536) if ready else b""


def test_an_error_is_written_before_emit_returns_and_info_lines_soon_after() -> None:
    read, write = os.pipe()
    handler = BatchedStreamHandler(write, interval=0.05)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(TextFormatter())
    try:
        handler.handle(record(logging.ERROR, "broken %s", "thing"))
        assert b"ERROR chainpay.test: broken thing\n" in readable(read, 0)

        handler.handle(record(logging.INFO, "POST /v1/invoices 201 %.1fms", 3.25))
        assert b"INFO chainpay.test: POST /v1/invoices 201 3.2ms\n" in readable(read, 5)
    finally:
        handler.close()
        os.close(read)
        os.close(write)


def test_secrets_are_redacted_before_the_line_is_formatted() -> None:
    line = record(logging.INFO, "key %s", "cpk_abcdefghijklmnop")
    RedactingFilter().filter(line)
    assert line.getMessage() == "key cpk_[redacted]"
    assert "cpk_abc" not in TextFormatter().format(line)
