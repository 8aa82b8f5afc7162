"""Django integration: add `"invalidator.contrib.django"` to
`INSTALLED_APPS` and describe what to track in settings:

```python
INVALIDATOR = {
    "HTTP": "http://127.0.0.1:8080",      # or "STREAM": "redis://...", "STREAM_NAME": "commits"
    "TOKEN": None,                        # the HTTP API's bearer token, if it has one
    "MODELS": ["shop.Customer", "shop.Offer"],
    "SOURCE": "shop",                     # optional: each commit's source
    # Optional, with their defaults:
    "BACKGROUND": True,                   # False: publish in on_commit, waiting (scripts)
    "QUEUE_SIZE": 10_000,                 # commits queued (or being sent) at most
    "DELIVERY_TIMEOUT": 60,               # seconds to keep retrying a commit
    "EXIT_TIMEOUT": 5,                    # seconds to deliver what is queued at exit
    "BEFORE_IMAGES": "loaded",            # or "query": read each updated row first
}
```

Every setting is checked when Django starts; a bad one is an
`ImproperlyConfigured` naming it and its value.

**What is recorded.** Each save and delete of a tracked model, with the
row's `before` image for an update or delete, and published as one
commit per transaction in `transaction.on_commit`; a rolled-back
transaction, or savepoint, publishes nothing. Not seen: `QuerySet.update`,
`bulk_create`, `bulk_update`, raw SQL and other processes' writes, which
send no signals; use the Postgres source, which reads the database's own
log, when those matter.

**Before images, without a query.** The `before` image is the row as the
instance was loaded (remembered in `post_init`, as django-dirtyfields
does), so saving or deleting a loaded instance issues its UPDATE or
DELETE and nothing else. A save makes what it wrote the remembered row
once its transaction commits (a second save of the instance inside the
same transaction, or after a rollback, reads its row); `refresh_from_db`
updates it. One query, for just what is not known, is made for fields
deferred at load (`only()`, `defer()`), values saved as expressions
(`F("n") + 1`) and generated fields, and the whole row for an instance
not loaded from the database (`Model(pk=5, ...).save()` updating a row).
The price: if another process changes the row between this instance's
load and its save, the `before` image is the row as loaded, and cache
entries the rules derive from the other process's values are not
invalidated by this save (the last writer has overwritten that process's
write anyway). `"BEFORE_IMAGES": "query"` reads every updated row in
`pre_save` instead, at one more query per save.

**Publishing never waits.** `on_commit` only queues the commit (a few
microseconds); a daemon thread sends the queue in batches over a
kept-alive connection (see `invalidator.background`). When `serve` is
unreachable, slow or answers 5xx, 408 or 429, the commit is retried with
exponential back-off (50 ms to 5 s, with jitter) for `DELIVERY_TIMEOUT`
seconds. Nothing is lost silently: a commit given up (still failing after
`DELIVERY_TIMEOUT`, refused with another 4xx such as a wrong `TOKEN`, or
still queued `EXIT_TIMEOUT` seconds into the process's exit), or dropped
because `QUEUE_SIZE` commits are already waiting, is counted and logged
as an error on the `invalidator` logger, naming its transaction, its
number of writes and its tables, whose cache entries may then stay stale
until they expire. `InvalidatorConfig.flush(timeout)` (in `.apps`) waits
until what was published is out, for management commands and tests; the
background publisher's counters (`published`, `retries`, `undelivered`,
`dropped`, `queued`) are on `InvalidatorConfig.recorder.publisher`.

The cache backend `invalidator.contrib.django.cache.InvalidatorCache`
stores `cache.set("turnus_data_1", ...)` at the very key a rule names
(Django's `PREFIX:VERSION:` only when `KEY_PREFIX` or `VERSION` is set,
given to `serve` as `[pipeline] key_prefix`), makes `cache.get_or_set`
lease-protected, takes `tags=`, and fails open on reads; its module
documentation has the settings.
"""
