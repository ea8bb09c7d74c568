"""Databases the benchmarks make for themselves."""

from __future__ import annotations

from sqlalchemy import make_url


async def fresh_postgres(url: str, name: str) -> str:
    """An empty database ``name`` on the PostgreSQL server of ``url`` (dropped first if it
    exists); its URL."""
    import asyncpg

    server = make_url(url)
    admin = await asyncpg.connect(
        host=server.host, port=server.port, user=server.username, password=server.password
    )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return server.set(database=name).render_as_string(hide_password=False)
