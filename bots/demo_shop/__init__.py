"""ShopNova's order system, simulated as a Model Context Protocol tool server over stdio.

A support team plugs its own systems into the bot as MCP servers; this is the demo one. It
owns a small SQLite file (customers, products, orders, returns and an audit of every write)
that is separate from the bot's own database, and serves five tools: see :mod:`.server`.

Run it with ``python -m bots.demo_shop --db shop.db [--today YYYY-MM-DD]``.
"""
