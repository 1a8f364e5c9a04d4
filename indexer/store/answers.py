"""What both adapters do once a write's fate is known, the same way.

A committer thread (DuckDB's writer, PostgreSQL's group committer) hands each event loop the
outcomes of its jobs; on the loop, each committed job's on-commit hook runs (even when its caller
stopped waiting: the commit stands, so its memory effects must follow), then each caller gets its
answer, then the commit listeners learn which kinds of writes committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

log = logging.getLogger(__name__)

Outcome = tuple[bool, Any]  # (committed, its result) or (False, the exception)
Listener = Callable[[set[str]], None]


class Answerable(Protocol):
    kind: str
    on_commit: Callable[[Any], None] | None
    future: asyncio.Future[Any]


J = TypeVar("J", bound=Answerable)


def run_on_commit(hook: Callable[[Any], None] | None, value: Any, kind: str) -> None:
    """A committed write's hook; its bug is logged, never raised: the commit stands."""
    if hook is None:
        return
    try:
        hook(value)
    except Exception:
        log.exception("on-commit hook of a %s write failed", kind)


def answer(answered: Sequence[tuple[Answerable, Outcome]], listeners: Sequence[Listener]) -> None:
    """On the event loop: on-commit hooks, then each caller's answer, then the listeners."""
    committed = {job.kind for job, (ok, _) in answered if ok}
    for job, (ok, value) in answered:
        if ok:
            run_on_commit(job.on_commit, value, job.kind)
        if job.future.done():  # the caller stopped waiting; its work committed anyway
            continue
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)
    if committed:
        for listener in listeners:
            listener(committed)


def answer_on_loops(
    jobs: Sequence[J], outcomes: Sequence[Outcome], listeners: Sequence[Listener]
) -> None:
    """From the committer thread: each event loop answers its own jobs (`answer`)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[J, Outcome]]] = {}
    for job, outcome in zip(jobs, outcomes, strict=True):
        by_loop.setdefault(job.future.get_loop(), []).append((job, outcome))
    for loop, answered in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
            loop.call_soon_threadsafe(answer, answered, listeners)
