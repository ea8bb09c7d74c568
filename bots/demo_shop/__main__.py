"""``python -m bots.demo_shop --db PATH [--today YYYY-MM-DD]``: serve the shop over stdio."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from bots.demo_shop.server import open_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bots.demo_shop",
        description="ShopNova's demo order system as an MCP tool server on stdin/stdout.",
    )
    parser.add_argument(
        "--db",
        type=Path,
        required=True,
        help="the shop's SQLite file; created and seeded if missing",
    )
    parser.add_argument(
        "--today",
        type=date.fromisoformat,
        help="pin 'today' (YYYY-MM-DD) for seeding a new file and for the return window",
    )
    args = parser.parse_args(argv)
    open_server(args.db, today=args.today).run("stdio")


if __name__ == "__main__":
    main()
