"""Writing a site directory atomically and incrementally.

A build writes into a staging directory beside ``out``. Each file is put with the hash of what determines it;
when the previous build's ``manifest.json`` lists the same path with the same hash, the old file is hard-linked
(or copied) instead of drawn again. :meth:`SiteWriter.commit` writes the manifest and swaps the staging directory
into place, so an error leaves the previous site (or nothing) and never a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from data_catalog.errors import ConfigError

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "wxemu-dashboard-1"


def content_hash(*parts: Any) -> str:
    """A hex digest of ``parts`` (bytes, str, numpy arrays, or anything ``repr`` describes faithfully)."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        if hasattr(part, "tobytes") and hasattr(part, "dtype"):
            h.update(str((part.dtype.str, part.shape)).encode())
            h.update(part.tobytes())
        elif isinstance(part, bytes):
            h.update(part)
        else:
            h.update(repr(part).encode())
        h.update(b"\x00")
    return h.hexdigest()


def read_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest of the site at ``out``; None when there is none."""
    try:
        data = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT else None


class SiteWriter:
    """Stage files for the site at ``out``; reuse unchanged ones from its previous build."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out).absolute()
        if self.out.exists() and (not self.out.is_dir() or (any(self.out.iterdir()) and not read_manifest(self.out))):
            raise ConfigError(f"out: {self.out} exists and is not a wxemu dashboard; choose another directory")
        old = read_manifest(self.out) if self.out.exists() else None
        self._old: dict[str, str] = dict(old["files"]) if old else {}
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.stage = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.building-", dir=self.out.parent))
        self.files: dict[str, str] = {}
        self.drawn: list[str] = []
        self.reused: list[str] = []

    def put(self, rel: str, digest: str, render: Callable[[Path], Any]) -> Path:
        """Stage ``rel``: reuse the previous build's file when its hash is ``digest``, else ``render(path)``."""
        target = self.stage / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        old = self.out / rel
        if self._old.get(rel) == digest and old.is_file():
            try:
                os.link(old, target)
            except OSError:
                shutil.copy2(old, target)
            self.reused.append(rel)
        else:
            render(target)
            self.drawn.append(rel)
        self.files[rel] = digest
        return target

    def put_text(self, rel: str, text: str) -> Path:
        """Stage a text file (hash = its content)."""
        return self.put(rel, content_hash(text), lambda p: p.write_text(text, encoding="utf-8"))

    def commit(self, info: dict[str, Any]) -> None:
        """Write the manifest and swap the staged site into ``out``."""
        manifest = {"format": MANIFEST_FORMAT, "files": self.files, **info}
        (self.stage / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        old = None
        if self.out.exists():
            old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
            os.replace(self.out, old)
        os.replace(self.stage, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        """Drop the staged files (the previous site stays as it was)."""
        shutil.rmtree(self.stage, ignore_errors=True)
