"""``wxemu catalog``: list the named datasets (a table) or show one entry (YAML)."""

from __future__ import annotations

import argparse

HELP = "list and show the named datasets of the catalog"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--catalog",
        action="append",
        default=[],
        metavar="YAML",
        help="extra catalog file(s) that extend/override the built-in entries "
        "(also $WXEMU_CATALOG, os.pathsep-separated)",
    )
    sub = parser.add_subparsers(dest="action", metavar="<action>", required=True)
    sub.add_parser("list", help="a table of the entries: name, kind, format, location")
    show = sub.add_parser("show", help="all fields of one entry, as YAML")
    show.add_argument("name", help="entry name (see `wxemu catalog list`)")


def _list(catalog) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text  # entries' text is shown as is, never parsed as markup

    table = Table(title="wxemu catalog", show_lines=False, highlight=False)
    for column in ("name", "kind", "format", "location"):
        table.add_column(column, overflow="fold", no_wrap=column == "name")
    for name in catalog.names():
        entry = catalog.get(name)
        location = entry.location or f"sample: {entry.sample}"
        table.add_row(*(Text(str(cell)) for cell in (name, entry.kind, entry.format, location)))
    Console(width=200, soft_wrap=True).print(table)
    return 0


def _show(catalog, name: str) -> int:
    import yaml

    from data_catalog.catalog import entry_as_dict
    from data_catalog.errors import WxemuError

    entry = catalog.get(name)
    doc = entry_as_dict(entry)
    try:  # a sample entry resolves to the local file (or a download); show the entry even when that fails
        resolved = catalog.location(name)
    except WxemuError as exc:
        resolved = f"(unavailable: {exc})"
    if resolved != entry.location:
        doc["resolved_location"] = resolved
    doc["defined_in"] = catalog.origins.get(name)
    print(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=110, default_flow_style=None), end="")
    return 0


def run(args: argparse.Namespace) -> int:
    from data_catalog.catalog import load_catalog

    catalog = load_catalog(args.catalog)
    if args.action == "list":
        return _list(catalog)
    return _show(catalog, args.name)
