"""HTML pages rendered with Jinja2 (autoescaping on: every name, attribute and path from a store shows as text)."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import jinja2

from pipeline.dashboard.site import content_hash

NAV = (
    ("index", "index.html", "Scorecard"),
    ("significance", "significance.html", "Significance"),
    ("curves", "curves.html", "Lead-time curves"),
    ("maps", "maps.html", "Maps"),
    ("timeline", "timeline.html", "Per-init timeline"),
    ("spectra", "spectra.html", "Spectra"),
    ("explanations", "explanations.html", "Explanations"),
    ("runs", "runs.html", "Runs"),
)
STATIC = ("dashboard.js", "dashboard.css")


def environment() -> jinja2.Environment:
    """The Jinja2 environment of the package's templates, autoescaping everything."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.files("pipeline.dashboard") / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render(env: jinja2.Environment, template: str, **context: Any) -> str:
    """Render ``template`` with ``context`` (and the navigation bar)."""
    nav = [{"page": p, "file": f, "label": label} for p, f, label in NAV]
    return env.get_template(template).render(nav=nav, **context)


def static_file(name: str) -> str:
    """The text of a packaged static file (``dashboard.js``, ``dashboard.css``)."""
    return (resources.files("pipeline.dashboard") / "static" / name).read_text(encoding="utf-8")


def slug(text: str) -> str:
    """A file-name-safe, collision-free name for ``text`` (letters, digits, ``-_.`` and a short hash)."""
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:40] or "x"
    return f"{clean}-{content_hash(text)[:8]}"
