"""A Django project as a user builds it, over a real Postgres and a real Redis,
with `invalidator serve --postgres` reading the database's own log and no code
of ours in the application.

The project is made with `django-admin startproject` and `manage.py startapp`,
its models are plain Django, its tables are made by `manage.py migrate`, and it
has a table without a primary key (`legacy_import`, made by a `RunSQL`
migration) that it updates and deletes from. It connects as `app`, a role that
is not a superuser; `invalidator postgres check` prints the SQL that makes the
database ready for `serve` as that role, an administrator pipes it to `psql`,
and the check then finds nothing missing.

The test proves that:

- the application's writes are never refused: the publication is not
  `FOR ALL TABLES` and leaves `legacy_import` out, so its updates and deletes
  (which Postgres refuses on a published table without a replica identity)
  go through;
- `save()`, `QuerySet.update`, raw SQL through Django's cursor, a `delete()`
  and a child moved to another turnus each invalidate exactly their turnuses'
  keys, and no others;
- the ghost standby: while a commit waits for a synchronous standby that never
  answers, the row is not yet visible to readers, so the cached value must stay
  (else a reader would fill the cache with the old row, for good); once the
  commit completes, the key goes and the next read caches the new row.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
import redis
from conftest import ROOT, PostgresCluster, RedisNode, Serve, invalidator_bin, wait_until

from invalidator import Cache

PROJECT = "turnussite"  # `site` itself is refused by startproject: it shadows Python's module

MODELS = """from django.db import models


class Turnus(models.Model):
    name = models.CharField(max_length=100)


class Kind(models.Model):
    turnus = models.ForeignKey(Turnus, on_delete=models.CASCADE)
    name = models.CharField(max_length=100)

    class Meta:
        db_table = "kinder"


class Geld(models.Model):
    turnus = models.ForeignKey(Turnus, on_delete=models.CASCADE)
    amount = models.FloatField()

    class Meta:
        db_table = "geld"
"""

# The application's code: each command is one run of the application, every
# write through Django (save, QuerySet.update, its cursor, delete), each in
# Django's autocommit, so one statement is one transaction.
APP = """import json
import sys

import django

django.setup()

from django.db import connection
from django.db.models import F

from turnusapp.models import Geld, Kind, Turnus

command, *args = sys.argv[1:]
out = None
if command == "seed":
    turnuses = [Turnus.objects.create(name=f"turnus {i}") for i in (1, 2, 3)]
    t1, t2, t3 = turnuses
    kinder = [
        Kind.objects.create(turnus=t1, name="anna"),
        Kind.objects.create(turnus=t1, name="ben"),
        Kind.objects.create(turnus=t2, name="clara"),
    ]
    Geld.objects.create(turnus=t1, amount=10.0)
    Geld.objects.create(turnus=t2, amount=20.0)
    with connection.cursor() as c:
        c.execute("INSERT INTO legacy_import (turnus_id, note) VALUES (%s, 'x')", [t1.pk])
    out = {"turnus": [t.pk for t in turnuses], "kind": [k.pk for k in kinder]}
elif command == "rename":
    kind = Kind.objects.get(pk=int(args[0]))
    kind.name = args[1]
    kind.save()
elif command == "bump":
    out = Geld.objects.filter(turnus_id=int(args[0])).update(amount=F("amount") + 1)
elif command == "raw-rename":
    with connection.cursor() as c:
        c.execute("UPDATE kinder SET name = %s WHERE id = %s", [args[1], int(args[0])])
        out = c.rowcount
elif command == "delete":
    Kind.objects.get(pk=int(args[0])).delete()
elif command == "move":
    kind = Kind.objects.get(pk=int(args[0]))
    kind.turnus = Turnus.objects.get(pk=int(args[1]))
    kind.save()
elif command == "legacy":
    counts = []
    with connection.cursor() as c:
        for sql in (
            "INSERT INTO legacy_import (turnus_id, note) VALUES (1, 'z')",
            "UPDATE legacy_import SET note = 'y'",
            "DELETE FROM legacy_import",
        ):
            c.execute(sql)
            counts.append(c.rowcount)
    out = counts
elif command == "names":
    names = Kind.objects.filter(turnus_id=int(args[0])).order_by("name")
    out = ",".join(k.name for k in names)
else:
    raise SystemExit(f"unknown command {command}")
print(json.dumps(out))
"""


def run(args, cwd=None, env=None, stdin=None, timeout=300):
    """Runs a command to completion; a failure names its output."""
    out = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        pytest.fail(
            f"`{' '.join(map(str, args))}` exited with {out.returncode}:\n"
            f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}",
            pytrace=False,
        )
    return out.stdout


def turnus_rule(into):
    """A rules folder of its own holding only the turnus rule, so that the
    check and the publication cover the tables one rule reads."""
    source = Path(os.environ.get("INVALIDATOR_RULES") or ROOT / "target/rules") / "turnus.wasm"
    if not source.is_file():
        pytest.fail(
            f"no turnus rule at {source}: run `cargo xtask build-rules` (which "
            "`cargo xtask test` does) or set $INVALIDATOR_RULES",
            pytrace=False,
        )
    into.mkdir()
    shutil.copy(source, into / "turnus.wasm")
    return into


class Project:
    """The Django project, made and run as a user does, by its own commands."""

    def __init__(self, root, port):
        bindir = Path(sys.executable).parent  # the venv's, not resolved past its symlink
        django_admin = bindir / "django-admin"
        if not django_admin.is_file():
            pytest.fail(f"no django-admin at {django_admin}: install the [test] extras")
        self.dir = root
        self.env = {
            k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")
        }
        self.env["DJANGO_SETTINGS_MODULE"] = f"{PROJECT}.settings"
        root.mkdir()
        run([django_admin, "startproject", PROJECT, root], env=self.env)
        self.manage("startapp", "turnusapp")
        (root / "turnusapp/models.py").write_text(MODELS)
        settings = root / PROJECT / "settings.py"
        text = settings.read_text()
        text, apps = re.subn(r"INSTALLED_APPS = \[\n", "\\g<0>    'turnusapp',\n", text)
        database = (
            "DATABASES = {\n"
            "    'default': {\n"
            "        'ENGINE': 'django.db.backends.postgresql',\n"
            "        'NAME': 'app',\n"
            "        'USER': 'app',\n"
            "        'PASSWORD': 'app',\n"
            "        'HOST': '127.0.0.1',\n"
            f"        'PORT': '{port}',\n"
            "    }\n"
            "}\n"
        )
        text, databases = re.subn(
            r"^DATABASES = \{\n.*?^\}\n", lambda _: database, text, flags=re.S | re.M
        )
        assert (apps, databases) == (1, 1), f"settings.py not as startproject writes it:\n{text}"
        settings.write_text(text)
        self.manage("makemigrations", "turnusapp")
        self.manage("makemigrations", "turnusapp", "--empty", "-n", "legacy")
        [legacy] = (root / "turnusapp/migrations").glob("*_legacy.py")
        text = legacy.read_text()
        assert "operations = [" in text, text
        create = 'migrations.RunSQL("CREATE TABLE legacy_import (turnus_id int, note text)")'
        legacy.write_text(text.replace("operations = [", f"operations = [\n        {create},", 1))
        self.manage("migrate")
        (root / "app.py").write_text(APP)

    def manage(self, *args):
        return run([sys.executable, "manage.py", *args], cwd=self.dir, env=self.env)

    def app(self, *args, timeout=120):
        """Runs one command of the application; its JSON answer."""
        out = run([sys.executable, "app.py", *args], cwd=self.dir, env=self.env, timeout=timeout)
        return json.loads(out.strip().splitlines()[-1])


def test_a_django_project_over_postgres_is_invalidated_from_the_log(tmp_path):
    bin_path = invalidator_bin()
    rules = turnus_rule(tmp_path / "rules")
    cluster = PostgresCluster()  # its own: the test changes the server's settings
    redis_server = serve = admin = None
    try:
        redis_server = RedisNode()
        admin = psycopg.connect(cluster.url(), autocommit=True)
        admin.execute("CREATE ROLE app LOGIN PASSWORD 'app'")  # no SUPERUSER, no REPLICATION
        admin.execute("CREATE DATABASE app OWNER app")
        admin.close()
        admin = psycopg.connect(cluster.url("app"), autocommit=True)
        project = Project(tmp_path / "project", cluster.port)
        # Rows written before the slot exists are never read from the log, so
        # the seed's inserts cannot delete a key set later for another step.
        seed = project.app("seed")
        t1, t2, t3 = seed["turnus"]
        anna, ben, clara = seed["kind"]

        app_url = f"postgresql://app:app@127.0.0.1:{cluster.port}/app"
        check = [bin_path, "postgres", "check", "--postgres", app_url, "--rules", rules]
        first = subprocess.run([str(a) for a in check], capture_output=True, text=True, timeout=300)
        said = f"stdout:\n{first.stdout}\nstderr:\n{first.stderr}"
        assert first.returncode == 1, f"check exited with {first.returncode}, not 1:\n{said}"
        assert "REPLICATION" in first.stdout, said
        assert any(
            "kinder" in line and "REPLICA IDENTITY FULL" in line
            for line in first.stdout.splitlines()
        ), said
        # As an administrator would: the printed SQL, run as the superuser.
        psql = [cluster.bindir / "psql", "-h", "127.0.0.1", "-p", cluster.port]
        psql += ["-U", "postgres", "-d", "app", "-v", "ON_ERROR_STOP=1", "-f", "-"]
        run(psql, stdin=first.stdout)
        again = subprocess.run([str(a) for a in check], capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, (
            f"check still finds something missing after its SQL ran (exit {again.returncode}):\n"
            f"stdout:\n{again.stdout}\nstderr:\n{again.stderr}"
        )

        serve = Serve(
            redis_server.url,
            ["--postgres", app_url],
            env={
                "INVALIDATOR_POSTGRES__CONFIRM_EVERY": "100ms",
                "INVALIDATOR_PIPELINE__RETRY_MIN": "20ms",
            },
            rules=rules,
        )

        def log():
            return "serve's log:\n" + "".join(serve.log[-300:])

        def settle(what, done, within=30.0):
            try:
                wait_until(what, done, within)
            except pytest.fail.Exception as e:
                failure = str(e)
            else:
                return
            pytest.fail(f"{failure}\n{log()}", pytrace=False)

        def slot_active():
            row = admin.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = 'invalidator'"
            ).fetchone()
            return row is not None and row[0]

        settle("serve streams from the slot `invalidator`", slot_active, within=60)
        row = admin.execute(
            "SELECT puballtables FROM pg_publication WHERE pubname = 'invalidator'"
        ).fetchone()
        assert row is not None, f"no publication `invalidator`\n{log()}"
        assert row[0] is False, f"the publication is FOR ALL TABLES\n{log()}"
        published = {
            r[0]
            for r in admin.execute(
                "SELECT tablename FROM pg_publication_tables WHERE pubname = 'invalidator'"
            )
        }
        assert {"kinder", "geld"} <= published, f"published: {published}\n{log()}"
        assert "legacy_import" not in published, f"published: {published}\n{log()}"

        r = redis.Redis.from_url(redis_server.url)

        def key(t):
            return f"turnus_data_{t}"

        everything = [key(t1), key(t2), key(t3), "unrelated"]

        def after(what, write, gone):
            """Sets every key, runs the write, and waits until exactly the keys
            `gone` are gone."""
            for k in everything:
                r.set(k, b"page")
            answer = write()
            settle(f"{what}: {gone} are gone", lambda: r.exists(*gone) == 0)
            # Time for a wrong, later invalidation to show.
            time.sleep(0.3)
            kept = [k for k in everything if k not in gone]
            missing = [k for k in kept if not r.exists(k)]
            assert not missing, f"{what} also invalidated {missing}\n{log()}"
            return answer

        after("Kind.save()", lambda: project.app("rename", anna, "anna2"), [key(t1)])
        updated = after("QuerySet.update", lambda: project.app("bump", t2), [key(t2)])
        assert updated == 1
        updated = after("raw SQL", lambda: project.app("raw-rename", clara, "raw"), [key(t2)])
        assert updated == 1
        after("Kind.delete()", lambda: project.app("delete", ben), [key(t1)])
        after("a moved child", lambda: project.app("move", clara, t1), [key(t2), key(t1)])

        # The table without a primary key: Postgres refuses an UPDATE or a
        # DELETE on a published table without a replica identity; here none
        # is refused (run raises on any error), and no key goes.
        for k in everything:
            r.set(k, b"page")
        counts = project.app("legacy")
        assert counts == [1, 2, 2], counts
        time.sleep(0.5)
        assert r.exists(*everything) == len(everything), log()

        # Ghost standby: a synchronous standby that never connects, so every
        # COMMIT is written to the WAL (where the slot can read it) but waits,
        # invisible to other sessions, until the setting is reset.
        cache = Cache.from_url(redis_server.url)
        loads = []

        def loader():
            loads.append(1)
            return project.app("names", t1).encode()

        r.delete(key(t1))
        assert cache.get_or_fill(key(t1), loader) == b"anna2,raw"
        assert len(loads) == 1 and r.get(key(t1)) == b"anna2,raw"
        admin.execute("ALTER SYSTEM SET synchronous_standby_names = 'ghost'")
        admin.execute("SELECT pg_reload_conf()")
        written = []

        def write():
            try:
                written.append(project.app("rename", anna, "ghost"))
            except BaseException as e:  # pytest.fail's too, to report it below
                written.append(e)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        try:
            settle(
                "the write's COMMIT waits for the ghost standby",
                lambda: (
                    admin.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
                    ).fetchone()[0]
                    == 1
                ),
            )
            time.sleep(1.5)
            assert writer.is_alive() and not written, "the COMMIT did not wait for the standby"
            assert r.get(key(t1)) == b"anna2,raw", (
                f"the key went while its commit was not yet visible to readers\n{log()}"
            )
            assert cache.get_or_fill(key(t1), loader) == b"anna2,raw"
            assert len(loads) == 1, "the loader ran though the value was cached"
        finally:
            admin.execute("ALTER SYSTEM RESET synchronous_standby_names")
            admin.execute("SELECT pg_reload_conf()")
        writer.join(timeout=60)
        assert not writer.is_alive() and written == [None], f"the write failed: {written}"
        settle("the committed write's key is gone", lambda: not r.exists(key(t1)))
        assert cache.get_or_fill(key(t1), loader) == b"ghost,raw"
        assert len(loads) == 2
        assert cache.get_or_fill(key(t1), loader) == b"ghost,raw"
        assert len(loads) == 2, "the new value was not stored"
        assert r.get(key(t1)) == b"ghost,raw"
    finally:
        if serve is not None:
            serve.stop()
        if admin is not None:
            admin.close()
        if redis_server is not None:
            redis_server.stop()
        cluster.stop()
