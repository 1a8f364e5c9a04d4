"""Object ids: unguessable, unique across threads, and never repeated by a forked child."""

from __future__ import annotations

import os
import threading

from indexer.domain.ids import looks_like, new_id


def test_ids_carry_their_prefix_and_22_base62_characters() -> None:
    ident = new_id("inv")
    assert looks_like("inv", ident) and not looks_like("evt", ident)
    assert not looks_like("inv", ident[:-1]) and not looks_like("inv", ident[:-1] + "-")


def test_threads_drawing_ids_at_once_never_share_one() -> None:
    # given eight threads drawing from the shared random buffer at the same time
    drawn: list[list[str]] = [[] for _ in range(8)]

    def draw(into: list[str]) -> None:
        into.extend(new_id("evt") for _ in range(5_000))

    threads = [threading.Thread(target=draw, args=(into,)) for into in drawn]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then all 40,000 are distinct
    every = [ident for into in drawn for ident in into]
    assert len(set(every)) == len(every) == 40_000


def test_a_forked_child_does_not_repeat_the_parents_next_ids() -> None:
    # given a parent whose random buffer is filled
    new_id("inv")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave without running pytest's teardown
        os.close(read)
        os.write(write, " ".join(new_id("inv") for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 4096).decode().split()
    os.close(read)
    os.waitpid(pid, 0)
    # then the parent's next ids are not the child's
    parent = [new_id("inv") for _ in range(3)]
    assert len(child) == 3 and not set(child) & set(parent)
