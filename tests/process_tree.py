"""Finding a test's child processes through /proc (Linux), for the signal tests (no tests here)."""

from __future__ import annotations

import os


def processes_mentioning(text: str) -> list[int]:
    """The pids whose command line contains `text`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if text.encode() in handle.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def children_of(pid: int, mentioning: str) -> list[int]:
    """The processes started by `pid` whose command line contains `mentioning`."""
    return [child for child in processes_mentioning(mentioning) if parent_of(child) == pid]


def send(pid: int, number: int) -> None:
    """Signal `pid`; one that has already exited has nothing left to stop."""
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass
