"""Django integration: add `"invalidator.contrib.django"` to
`INSTALLED_APPS` and describe what to track in settings:

```python
INVALIDATOR = {
    "HTTP": "http://127.0.0.1:8080",      # or "STREAM": "redis://...", "STREAM_NAME": "commits"
    "TOKEN": None,                        # the HTTP API's bearer token, if it has one
    "MODELS": ["shop.Customer", "shop.Offer"],
    "SOURCE": "shop",                     # optional: each commit's source
}
```

Each save and delete of a tracked model is recorded with its `before`
image (read in `pre_save`: one query per updated row, for the model's
concrete fields) and published as one commit per transaction in
`transaction.on_commit`; a rolled-back transaction, or savepoint,
publishes nothing. Not seen: `QuerySet.update`, `bulk_create`,
`bulk_update`, raw SQL and other processes' writes, which send no
signals; use the Postgres source, which reads the database's own log,
when those matter.

The cache backend `invalidator.contrib.django.cache.InvalidatorCache`
stores `cache.set("turnus_data_1", ...)` at the very key a rule names
(Django's `PREFIX:VERSION:` only when `KEY_PREFIX` or `VERSION` is set,
given to `serve` as `[pipeline] key_prefix`), makes `cache.get_or_set`
lease-protected, takes `tags=`, and fails open on reads; its module
documentation has the settings.
"""
