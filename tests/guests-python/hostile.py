"""A Python rule that misbehaves on purpose, to show the sandbox contains it
as it contains the Rust one (`tests/guests/hostile`). What it does depends
on the table of the first write:

- `loop`: spins forever.
- `grab`: allocates until memory runs out.
- `raise`: raises an exception that is not a rule error.
- `recurse`: recurses without end.
- `escape`: tries to read a file, the clock and the environment.
- `log`: logs a warning through `logging`, which the SDK hands to the host,
  and returns key `logged`.
- anything else: key `ok:{table}`.
"""

import logging

from invalidator_rules import Commit, RuleInfo, Target, Targets, export

log = logging.getLogger(__name__)

RULE = RuleInfo("hostile_py", "0.0.1", fallback=[Target.key("hostile:fallback")])


def on_commit(commit: Commit, out: Targets) -> None:
    writes = commit.writes()
    table = writes[0].table if writes else ""
    if table == "loop":
        n = 0
        while True:
            n += 1
    elif table == "grab":
        hoard = []
        while True:
            hoard.append(bytearray(1 << 20))
    elif table == "raise":
        raise ValueError("refusing on purpose")
    elif table == "recurse":

        def down(n: int) -> int:
            return down(n + 1) + 1

        down(0)
    elif table == "escape":
        import os
        import time

        seen = []
        try:
            with open("/etc/hostname") as f:
                seen.append("file:" + f.read())
        except OSError as e:
            seen.append(f"no-file:{type(e).__name__}")
        seen.append(f"time:{time.time()}")
        seen.append(f"env:{len(os.environ)}")
        for s in seen:
            out.key(s)
    elif table == "log":
        log.warning("hello from the hostile Python rule")
        out.key("logged")
    else:
        out.key(f"ok:{table}")


WitWorld = export(__name__)
