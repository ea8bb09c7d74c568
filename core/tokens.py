"""A conservative local token estimate for history budgeting.

Anthropic publishes no offline tokenizer for current Claude models, and ``count_tokens`` is a
network call with its own rate limit, so the window is budgeted on an estimate that errs high:
about 3.5 characters a token for text, JSON length for tool blocks, plus per-block overhead.
"""

from __future__ import annotations

import json
import math
from typing import Any

_CHARS_PER_TOKEN = 3.5
_BLOCK_OVERHEAD = 4


def estimate(content: list[dict[str, Any]]) -> int:
    total = 0
    for block in content:
        body = block["text"] if block.get("type") == "text" else json.dumps(block)
        total += math.ceil(len(body) / _CHARS_PER_TOKEN) + _BLOCK_OVERHEAD
    return total
