"""Key templates: `turnus_data_{id}`, `offers:{shop}:{id}`, the way the
warmer names the keys it can load and the stats name a key family.

A template is literal text with `{field}` placeholders. A key matches it
when the literal parts are there, in order, and each field is at least one
character; a field matches as little as it can (so `a_{x}_{y}` reads
`a_1_2_3` as x=`1`, y=`2_3`). Fields are strings: the key says nothing of
their type. `{{` and `}}` are literal braces, as in `str.format`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import InvalidInput, shown

_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@dataclass(frozen=True)
class Template:
    """A parsed key template; see the module documentation."""

    text: str
    fields: tuple[str, ...] = field(init=False)
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _glob: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text:
            raise InvalidInput(f"key template {shown(self.text)} is empty or not text")
        regex, glob, fields = [], [], []
        at = 0
        for m in _FIELD.finditer(self.text):
            literal = self.text[at : m.start()]
            regex.append(re.escape(literal))
            glob.append(_glob_escape(literal))
            at = m.end()
            token = m.group(0)
            if token in ("{{", "}}"):
                regex.append(re.escape(token[0]))
                glob.append(_glob_escape(token[0]))
                continue
            name = m.group(1)
            if name is None or not name.isidentifier():
                raise InvalidInput(
                    f"key template `{self.text}` has `{token}` at {m.start()}: a field is "
                    "`{name}`, a Python identifier (write `{{` or `}}` for a brace)"
                )
            if name in fields:
                raise InvalidInput(f"key template `{self.text}` names the field `{name}` twice")
            fields.append(name)
            regex.append(f"(?P<{name}>.+?)")
            glob.append("*")
        literal = self.text[at:]
        regex.append(re.escape(literal))
        glob.append(_glob_escape(literal))
        object.__setattr__(self, "fields", tuple(fields))
        object.__setattr__(self, "_regex", re.compile("".join(regex), re.DOTALL))
        object.__setattr__(self, "_glob", "".join(glob))

    def match(self, key: str) -> dict[str, str] | None:
        """The fields of `key` if it matches, else `None`."""
        m = self._regex.fullmatch(key)
        return None if m is None else m.groupdict()

    def format(self, **fields: object) -> str:
        """The key with these fields (each made text with `str`); every
        field of the template must be given, and no other."""
        missing = [f for f in self.fields if f not in fields]
        extra = sorted(set(fields) - set(self.fields))
        if missing or extra:
            raise InvalidInput(
                f"key template `{self.text}` takes the fields {list(self.fields)}; "
                f"missing {missing}, unknown {extra}"
            )
        return (
            self.text.replace("{{", "\0")
            .replace("}}", "\1")
            .format_map({k: str(v) for k, v in fields.items()})
            .replace("\0", "{")
            .replace("\1", "}")
        )

    @property
    def glob(self) -> str:
        """The Redis glob pattern of the keys it can match
        (`turnus_data_*`)."""
        return self._glob


def _glob_escape(text: str) -> str:
    """`text` with Redis's glob characters escaped."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def family_of(key: str, separators: str = ":_") -> str:
    """A key's family when no template names it: the key up to its first
    separator (`offers:12` and `offers:13` are `offers`), or the whole key
    when it has none."""
    cut = min((i for i in (key.find(s) for s in separators) if i >= 0), default=-1)
    return key if cut < 0 else key[:cut]
