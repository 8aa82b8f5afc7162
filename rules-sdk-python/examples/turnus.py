"""The Django app of seed 002, in Python: per-turnus page caches and user
profiles. It gives exactly what `example-rules/turnus` (Rust) gives.

- `kinder`, `schwerpunkte`, `notizen`, `geld`: key `turnus_data_{turnus_id}`
  (both turnuses when a row moves from one to another).
- `auslagerorte`: pattern `turnus_data_*`, since a location can affect every
  turnus (the seed's `invalidate_all_turnus_caches`).
- `user_profiles`: key `user_profile_{user_id}`, the profile's user, as the
  seed keys it (`user_profile_{user.id}`).
"""

from invalidator_rules import Commit, RuleInfo, Target, Targets, export

#: Tables whose rows belong to one turnus.
PER_TURNUS = ("kinder", "schwerpunkte", "notizen", "geld")

RULE = RuleInfo(
    "turnus",
    "1.0.0",
    tables=[*PER_TURNUS, "auslagerorte", "user_profiles"],
    fallback=[Target.pattern("turnus_data_*"), Target.pattern("user_profile_*")],
)


def on_commit(commit: Commit, out: Targets) -> None:
    for w in commit.writes():
        if w.table in PER_TURNUS:
            for turnus in w.each("turnus_id"):
                out.key(f"turnus_data_{turnus}")
        elif w.table == "auslagerorte":
            out.pattern("turnus_data_*")
        elif w.table == "user_profiles":
            for user in w.each("user_id"):
                out.key(f"user_profile_{user}")


# What componentize-py exports: this module's rule, behind the WIT interface.
WitWorld = export(__name__)
