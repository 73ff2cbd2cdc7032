"""Hooks into a running ingest: what tests and tools observe or replace without touching its internals."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from data_catalog.ingestion.checksums import file_fingerprint

#: Environment variable: simulate a crash after this many blocks were written (resume tests from the command line).
CRASH_ENV = "WXEMU_INGEST_CRASH_AFTER"


class SimulatedCrash(RuntimeError):
    """Raised by the crash hook (``$WXEMU_INGEST_CRASH_AFTER``) to simulate a killed ingest."""


def available_memory() -> int:
    """Bytes of memory available now (psutil)."""
    return int(psutil.virtual_memory().available)


@dataclass(frozen=True)
class IngestHooks:
    """Callables an ingest calls at fixed points (all optional).

    after_block(n_done): in this process after each block is written and recorded (n_done: blocks written so
    far in this run); an exception from it stops the ingest as a crash would. hash_file(path, storage_options)
    -> {path, sha256, bytes}: the fingerprint of one source (default :func:`file_fingerprint`; runs in the
    hashing threads or on the cluster). checksums_known(sources): in the hashing thread once every checksum is
    known, before the ingest can see them. available_memory() -> bytes: what the climatology's in-memory bins
    may use half of (default: psutil's available memory).
    """

    after_block: Callable[[int], None] | None = None
    hash_file: Callable[[str, dict | None], dict[str, Any]] = file_fingerprint
    checksums_known: Callable[[list[dict[str, Any]]], None] | None = None
    available_memory: Callable[[], int] = available_memory

    @classmethod
    def from_env(cls) -> IngestHooks:
        """The default hooks, with the crash hook of ``$WXEMU_INGEST_CRASH_AFTER`` when it is set."""
        value = os.environ.get(CRASH_ENV)
        if not value:
            return cls()
        limit = int(value)

        def crash(done: int) -> None:
            if done >= limit:
                raise SimulatedCrash(f"simulated crash after {done} blocks (${CRASH_ENV}={limit})")

        return cls(after_block=crash)
