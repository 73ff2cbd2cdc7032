"""Recognise Met Office PP files and fieldsfiles by suffix or by their first bytes (no iris needed)."""

from __future__ import annotations

import os

#: File suffixes taken as PP / fieldsfiles.
PP_SUFFIXES = (".pp", ".ff", ".pp0", ".pp1", ".fieldsfile", ".um")


def is_um_magic(head: bytes) -> bool:
    """True for the first 8 bytes of a PP file (a Fortran record of 64 or 128 header words, 32 or 64 bit,
    either byte order) or of a fieldsfile (fixed-length header: data set format version 15 or 20, then the
    sub-model 1, 2 or 4)."""
    if len(head) < 8:
        return False
    for order in ("big", "little"):
        if int.from_bytes(head[:4], order) in (256, 512):
            return True
        if int.from_bytes(head[:8], order) in (256, 512):
            return True
    version = int.from_bytes(head[:8], "big")
    return version in (15, 20)


def is_um_file(path: str) -> bool:
    """True when ``path`` has a PP/fieldsfile suffix."""
    return os.path.splitext(path.rstrip("/"))[1].lower() in PP_SUFFIXES
