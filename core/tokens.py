"""A conservative local token estimate for history budgeting.

Anthropic publishes no offline tokenizer for current Claude models, and ``count_tokens`` is a
network call with its own rate limit, so the window is budgeted on an estimate that errs high:
about 3.5 characters a token for text, JSON length for tool blocks, plus per-block overhead.
A photo or PDF kept in the database (``core.files``) counts by Anthropic's own figures: an
image costs about width × height / 750 tokens, a PDF page up to 3,000 tokens of text plus the
page as an image.
"""

from __future__ import annotations

import json
import math
from typing import Any

_CHARS_PER_TOKEN = 3.5
_BLOCK_OVERHEAD = 4
PIXELS_PER_TOKEN = 750
PDF_PAGE_TOKENS = 3000 + 1600
"""A PDF page: up to 3,000 tokens of extracted text plus the page as an image (at most about
1,600 tokens, the cost of an image Anthropic does not downscale)."""


def estimate(content: list[dict[str, Any]]) -> int:
    total = 0
    for block in content:
        if block.get("source", {}).get("type") == "blob":
            total += file_tokens(block) + _BLOCK_OVERHEAD
            continue
        body = block["text"] if block.get("type") == "text" else json.dumps(block)
        total += math.ceil(len(body) / _CHARS_PER_TOKEN) + _BLOCK_OVERHEAD
    return total


def file_tokens(block: dict[str, Any]) -> int:
    """What a stored photo or PDF block (``core.files.block``) costs when it is sent."""
    if block.get("type") == "image":
        return math.ceil(block["width"] * block["height"] / PIXELS_PER_TOKEN)
    return block["pages"] * PDF_PAGE_TOKENS
