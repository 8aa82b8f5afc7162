"""Integrations that record an application's writes and publish one commit
per transaction, after it commits: `django` and `sqlalchemy`."""
