"""A Django app for the tests: the turnus rule's `kinder` table."""
