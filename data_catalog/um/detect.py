"""Recognise Met Office PP files and fieldsfiles by suffix or by their first bytes (no iris needed)."""

from __future__ import annotations

import os

from data_catalog.errors import InputDataError

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


def check_pp_records(path: str, source: str | None = None) -> int:
    """Walk the Fortran records of a 32-bit PP file (header record, data record, repeated); return the number of
    fields. Raises InputDataError naming ``source`` when a record runs past the end of the file (a truncated
    file) or its length markers disagree (a corrupt one); iris reads data lazily and would fail only later."""
    source = source or path
    size = os.path.getsize(path)
    count, pos = 0, 0
    with open(path, "rb") as f:
        while pos < size:
            for what in ("header", "data"):
                head = f.read(4)
                if len(head) < 4:
                    raise InputDataError(f"{source}: truncated PP file: field {count + 1} has no {what} record")
                order = "big" if int.from_bytes(head, "big") < size else "little"
                n = int.from_bytes(head, order)
                if pos + 8 + n > size:
                    raise InputDataError(
                        f"{source}: truncated PP file: the {what} record of field {count + 1} ends at byte "
                        f"{pos + 8 + n} of {size}"
                    )
                f.seek(n, 1)
                if int.from_bytes(f.read(4), order) != n:
                    raise InputDataError(f"{source}: corrupt PP file: record markers disagree at byte {pos}")
                pos += 8 + n
            count += 1
    return count
