"""The errors the package raises, each naming the offending input, and
the helpers that name it."""

from __future__ import annotations

from typing import Any


class InvalidatorError(Exception):
    """Base of every error raised by this package."""


class InvalidInput(InvalidatorError, ValueError):
    """Input refused before anything was sent: a key inside the tag
    indexes' prefix, an empty tag, a bad ttl, something that is not a
    commit."""


class ServerError(InvalidatorError):
    """`invalidator serve` refused a request, with its error code (such as
    `invalid_commit` or `unauthorized`) and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def shown(value: Any, typed: bool = True) -> str:
    """`value` for a message: its repr, cut short, and (`typed`) its type
    (`'60' (str)`, so that a number given as text is seen for what it is).
    Never raises: an integer of thousands of digits has no repr (Python
    refuses to convert it), nor has an object whose `__repr__` fails."""
    if isinstance(value, int) and value.bit_length() > 256:
        text = f"<an integer of {value.bit_length()} bits>"
    else:
        try:
            text = repr(value)
        except Exception:
            text = f"<a {type(value).__name__} that cannot be shown>"
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})" if typed else text


def utf8(text: str, what: str) -> bytes:
    """`text` as UTF-8, or `InvalidInput` naming `what` when it holds a lone
    surrogate (from `surrogateescape`, or half of a pair split apart):
    redis-py cannot encode it, and `json` writes it as an escape that a
    JSON reader such as the server's refuses."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidInput(
            f"{what} holds {text[e.start : e.end]!r} at {e.start}, a lone surrogate, which is "
            "not UTF-8 text"
        ) from None
