"""How a dialogue item's target line and its context become one text to encode.

The text encoder truncates from the right at `features.text.max_length` tokens. With the
context first (the order of the released data), a long context pushes the sarcastic utterance
or the humorous punchline out of the window. `utterance_first` puts the target line first and
the context after it, nearest line first, so truncation only ever drops the oldest context;
the target line itself is cut only if it alone is longer than max_length.
"""

from __future__ import annotations

from grcf.errors import DataError

UTTERANCE_FIRST = "utterance_first"
CONTEXT_FIRST = "context_first"
ORDERS = (UTTERANCE_FIRST, CONTEXT_FIRST)
SEPARATOR = " | "  # plain text, so every tokenizer (and fine-tuning on the stored text) sees the same string


def text_order(options: dict, source) -> str:
    order = options.get("text_order", UTTERANCE_FIRST)
    if order not in ORDERS:
        raise DataError(source, f"text_order must be one of {', '.join(ORDERS)}, got {order!r}")
    return order


def join_text(target: str, context: list[str], order: str) -> str:
    """`target` (utterance / punchline) and `context` (chronological lines) as one string."""
    context = [c for c in context if c]
    if not context or not target:
        return target or " ".join(context)
    if order == CONTEXT_FIRST:
        return " ".join([*context, target])
    return target + SEPARATOR + " ".join(reversed(context))
