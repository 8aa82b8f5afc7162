"""Done when: a Django project, made as a user makes it, caches through
`invalidator.contrib.django.cache.InvalidatorCache`, changes its rows with
plain SQL, and `invalidator serve --postgres`, reading the database's own
log, makes the application's `cache.get` miss exactly the keys the turnus
rule names; with Redis down, `get_or_set` serves from the database.

The project comes from `django-admin startproject` and `manage.py
startapp`; its settings set `CACHES` to our backend (no KEY_PREFIX, so
`cache.set("turnus_data_1", ...)` writes the key the rule names). Its
models sit on the rule's tables: `kinder` (a child of a turnus) and
`user_profiles` (one per `auth.User`, keyed by `user_profile_{user_id}`).
The profile with id 1 belongs to user 2, so a rule that keyed profiles by
their own id would remove `user_profile_1` and keep `user_profile_2`.
`invalidator postgres check` prints what the database needs (the
publication, the replication role, `REPLICA IDENTITY FULL` on the rule's
tables, so that an update or a delete carries the old row's turnus) and an
administrator runs it, as in test_django_postgres.py, whose helpers this
test shares.

Every write is SQL on the database, never through Django, and every cache
read and write is the application's own `django.core.cache.cache`, each
command one run of the application.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis
from conftest import PostgresCluster, RedisNode, Serve, invalidator_bin, wait_until
from test_django_postgres import run, turnus_rule

PROJECT = "turnussite"

MODELS = """from django.conf import settings
from django.db import models


class Turnus(models.Model):
    name = models.CharField(max_length=100)


class Kind(models.Model):
    turnus = models.ForeignKey(Turnus, on_delete=models.CASCADE)
    name = models.CharField(max_length=100)

    class Meta:
        db_table = "kinder"


class UserProfile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    theme = models.CharField(max_length=20, default="light")

    class Meta:
        db_table = "user_profiles"
"""

# The application's code: each command is one run of the application.
APP = """import json
import sys

import django

django.setup()

from django.contrib.auth.models import User
from django.core.cache import cache

from turnusapp.models import Kind, Turnus, UserProfile


def names(turnus_id):
    return ",".join(
        k.name for k in Kind.objects.filter(turnus_id=turnus_id).order_by("name")
    )


command, *args = sys.argv[1:]
out = None
if command == "seed":
    users = [User.objects.create_user(name) for name in ("ulla", "uwe", "udo")]
    turnuses = [Turnus.objects.create(name=f"turnus {i}") for i in (1, 2, 3)]
    t1, t2, t3 = turnuses
    kinder = [
        Kind.objects.create(turnus=t1, name="anna"),
        Kind.objects.create(turnus=t1, name="ben"),
        Kind.objects.create(turnus=t2, name="clara"),
    ]
    # Profile 1 is the second user's, profile 2 the first's: a profile's id
    # is not its user's.
    profiles = [
        UserProfile.objects.create(user=users[1]),
        UserProfile.objects.create(user=users[0]),
    ]
    out = {
        "user": [u.pk for u in users],
        "turnus": [t.pk for t in turnuses],
        "kind": [k.pk for k in kinder],
        "profile": [[p.pk, p.user_id] for p in profiles],
    }
elif command == "set":
    for key in args:
        cache.set(key, {"cached": key})
elif command == "get":
    out = {key: cache.get(key) for key in args}
elif command == "names":
    out = cache.get_or_set(f"turnus_data_{args[0]}", lambda: names(int(args[0])))
elif command == "redis-down":
    loads = []

    def load():
        loads.append(1)
        return names(int(args[0]))

    key = f"turnus_data_{args[0]}"
    out = {
        "get": cache.get(key, "miss"),
        "get_or_set": [cache.get_or_set(key, load), cache.get_or_set(key, load)],
        "get_or_fill": cache.cache.get_or_fill(key, lambda: load().encode()).decode(),
        "loads": len(loads),
        "health": cache.health,
    }
    try:
        cache.set(key, "x")
        out["set"] = "stored"
    except Exception as e:
        out["set"] = type(e).__name__
else:
    raise SystemExit(f"unknown command {command}")
print(json.dumps(out))
"""


class Project:
    """The Django project, made and run as a user does."""

    def __init__(self, root: Path, port: int, redis_url: str) -> None:
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
        # What a user adds: the cache, as the backend's documentation shows.
        text += (
            "\nCACHES = {\n"
            "    'default': {\n"
            "        'BACKEND': 'invalidator.contrib.django.cache.InvalidatorCache',\n"
            f"        'LOCATION': '{redis_url}/0',\n"
            "        'OPTIONS': {'socket_timeout': 0.5, 'socket_connect_timeout': 0.5},\n"
            "    }\n"
            "}\n"
        )
        settings.write_text(text)
        self.manage("makemigrations", "turnusapp")
        self.manage("migrate")
        (root / "app.py").write_text(APP)

    def manage(self, *args: object) -> str:
        return run([sys.executable, "manage.py", *args], cwd=self.dir, env=self.env)

    def app(self, *args: object) -> object:
        """Runs one command of the application; its JSON answer."""
        out = run([sys.executable, "app.py", *args], cwd=self.dir, env=self.env, timeout=120)
        return json.loads(out.strip().splitlines()[-1])


def test_django_cache_get_misses_what_sql_changed(tmp_path: Path) -> None:
    bin_path = invalidator_bin()
    rules = turnus_rule(tmp_path / "rules")
    cluster = PostgresCluster()
    redis_server = serve = admin = None
    try:
        redis_server = RedisNode()
        admin = psycopg.connect(cluster.url(), autocommit=True)
        admin.execute("CREATE ROLE app LOGIN PASSWORD 'app'")  # no SUPERUSER, no REPLICATION
        admin.execute("CREATE DATABASE app OWNER app")
        admin.close()
        admin = psycopg.connect(cluster.url("app"), autocommit=True)
        project = Project(tmp_path / "project", cluster.port, redis_server.url)
        # Seeded before the slot exists: these inserts are never read.
        seed = project.app("seed")
        assert isinstance(seed, dict)
        t1, t2, t3 = seed["turnus"]
        anna, ben, clara = seed["kind"]
        [profile, owner], [other_profile, other_owner] = seed["profile"]
        assert (profile, owner) == (1, 2) and (other_profile, other_owner) == (2, 1), seed

        app_url = f"postgresql://app:app@127.0.0.1:{cluster.port}/app"
        check = [bin_path, "postgres", "check", "--postgres", app_url, "--rules", rules]
        first = subprocess.run([str(a) for a in check], capture_output=True, text=True, timeout=300)
        said = f"stdout:\n{first.stdout}\nstderr:\n{first.stderr}"
        assert first.returncode == 1, f"check exited with {first.returncode}, not 1:\n{said}"
        for table in ("kinder", "user_profiles"):
            assert any(
                table in line and "REPLICA IDENTITY FULL" in line
                for line in first.stdout.splitlines()
            ), f"no REPLICA IDENTITY FULL for {table}:\n{said}"
        psql = [cluster.bindir / "psql", "-h", "127.0.0.1", "-p", cluster.port]
        psql += ["-U", "postgres", "-d", "app", "-v", "ON_ERROR_STOP=1", "-f", "-"]
        run(psql, stdin=first.stdout)
        again = subprocess.run([str(a) for a in check], capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, (
            f"check still finds something missing after its SQL ran (exit {again.returncode}):\n"
            f"stdout:\n{again.stdout}\nstderr:\n{again.stderr}"
        )
        identities = dict(
            admin.execute(
                "SELECT relname, relreplident FROM pg_class "
                "WHERE relname IN ('kinder', 'user_profiles')"
            ).fetchall()
        )
        assert identities == {"kinder": "f", "user_profiles": "f"}, identities

        serve = Serve(
            redis_server.url,
            ["--postgres", app_url],
            env={
                "INVALIDATOR_POSTGRES__CONFIRM_EVERY": "100ms",
                "INVALIDATOR_PIPELINE__RETRY_MIN": "20ms",
            },
            rules=rules,
        )

        def log() -> str:
            return "serve's log:\n" + "".join(serve.log[-300:])

        def settle(what: str, done: object, within: float = 30.0) -> None:
            try:
                wait_until(what, done, within)
            except pytest.fail.Exception as e:
                pytest.fail(f"{e}\n{log()}", pytrace=False)

        def slot_active() -> bool:
            row = admin.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = 'invalidator'"
            ).fetchone()
            return row is not None and row[0]

        settle("serve streams from the slot `invalidator`", slot_active, within=60)

        r = redis.Redis.from_url(redis_server.url)
        everything = [
            f"turnus_data_{t1}",
            f"turnus_data_{t2}",
            f"turnus_data_{t3}",
            f"user_profile_{owner}",
            f"user_profile_{other_owner}",
            "unrelated",
        ]

        def sql(statement: str, *params: object) -> int:
            with psycopg.connect(app_url, autocommit=True) as db:
                return db.execute(statement, params).rowcount

        def after(what: str, write: object, gone: list[str]) -> None:
            """The application caches every key; `write` changes rows with
            SQL; then exactly `gone` miss for the application."""
            project.app("set", *everything)
            assert r.exists(*everything) == len(everything), "the keys are the keys as given"
            changed = write()  # type: ignore[operator]
            assert changed == 1, f"{what} changed {changed} rows"
            settle(f"{what}: {gone} are gone", lambda: r.exists(*gone) == 0)
            time.sleep(0.3)  # time for a wrong, later invalidation to show
            seen = project.app("get", *everything)
            assert isinstance(seen, dict)
            missed = sorted(k for k, v in seen.items() if v is None)
            assert missed == sorted(gone), f"{what}: cache.get missed {missed}, not {gone}\n{log()}"
            for key in everything:
                if key not in gone:
                    assert seen[key] == {"cached": key}, f"{what}: {key} is {seen[key]!r}"

        after(
            "a child's update",
            lambda: sql("UPDATE kinder SET name = 'anna2' WHERE id = %s", anna),
            [f"turnus_data_{t1}"],
        )
        after(
            "a child moved to another turnus",
            lambda: sql("UPDATE kinder SET turnus_id = %s WHERE id = %s", t3, clara),
            [f"turnus_data_{t2}", f"turnus_data_{t3}"],
        )
        after(
            "a child's delete",
            lambda: sql("DELETE FROM kinder WHERE id = %s", ben),
            [f"turnus_data_{t1}"],
        )
        after(
            "a profile's update",
            lambda: sql("UPDATE user_profiles SET theme = 'dark' WHERE id = %s", profile),
            [f"user_profile_{owner}"],  # profile 1 is user 2's: user_profile_1 stays
        )

        # get_or_set fills from the database, and a change empties it again.
        r.delete(f"turnus_data_{t1}")
        assert project.app("names", t1) == "anna2"
        assert r.exists(f"turnus_data_{t1}") == 1
        sql("UPDATE kinder SET name = 'anna3' WHERE id = %s", anna)
        settle("the filled key is gone", lambda: r.exists(f"turnus_data_{t1}") == 0)
        assert project.app("names", t1) == "anna3"

        # Redis down: reads fail open, served from the database, not stored.
        redis_server.stop()
        down = project.app("redis-down", t3)
        assert down == {
            "get": "miss",
            "get_or_set": ["clara", "clara"],
            "get_or_fill": "clara",
            "loads": 3,
            "health": {
                "fail_open_reads": 4,
                "outages": 1,
                "in_outage": True,
                "skipped_while_down": 3,
            },
            "set": "RedisDown",
        }, down
    finally:
        if serve is not None:
            serve.stop()
        if admin is not None:
            admin.close()
        if redis_server is not None:
            redis_server.stop()
        cluster.stop()
