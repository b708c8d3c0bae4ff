"""Django's ORM through the gateway: ``migrate`` on a fresh database, CRUD, a failed transaction, parameters.

Django is configured in-process (``settings.configure``) with one app, ``tests.compat.django_app``, whose
migration creates its table through the gateway. The token is the database password. The gateway runs with
its own policy: the ``django`` group is granted ``write`` with DDL allowed (migrations create tables) but
DCL and admin statements still refused.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db import IntegrityError, ProgrammingError, connection, transaction
from django.db.migrations.recorder import MigrationRecorder

from tests.gateway import DEMO_POLICY, RunningGateway

DJANGO_USER = ("dana", ("django",))

DJANGO_POLICY = (
    DEMO_POLICY
    + """\
  - name: django-migrations
    who: {groups: [django]}
    databases: [demo]
    role: write
    max_ttl: 1h
    guardrails: {deny: [dcl, admin]}
"""
)


@pytest.fixture(scope="module")
def django_gateway(pg_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """A gateway on a fresh demo database whose policy lets the ``django`` group run migrations."""
    database = f"c_{secrets.token_hex(6)}"
    pg_server.psql(f'CREATE DATABASE "{database}"')
    running = RunningGateway(
        pg_server, tmp_path_factory.mktemp("django"), DJANGO_POLICY, database, secrets.token_hex(3)
    )
    try:
        yield running
    finally:
        connection.close()
        running.stop()
        pg_server.psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture(scope="module")
def migrated(django_gateway: RunningGateway) -> RunningGateway:
    """Django configured against the gateway (token as PASSWORD) and ``migrate`` run through it."""
    database = {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": "127.0.0.1",
        "PORT": str(django_gateway.pg_port),
        "NAME": "demo",
        "USER": DJANGO_USER[0],
        "PASSWORD": django_gateway.token(*DJANGO_USER),
        "OPTIONS": {"sslmode": "disable"},
    }
    if settings.configured:
        settings.DATABASES["default"].update(database)
    else:
        settings.configure(
            DATABASES={"default": database},
            INSTALLED_APPS=["tests.compat.django_app"],
            USE_TZ=True,
            DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        )
    django.setup()
    call_command("migrate", verbosity=0, interactive=False, stdout=io.StringIO())
    return django_gateway


def _ticket_model() -> Any:
    """The app's model, once Django is set up (importing it earlier would fail)."""
    return apps.get_model("django_app", "Ticket")


def _create_in_one_transaction(model: Any, codes: list[str]) -> None:
    with transaction.atomic():
        for code in codes:
            model.objects.create(code=code, title=f"ticket {code}")


def test_migrate_creates_the_apps_table_and_records_it(migrated):
    assert "django_app_ticket" in connection.introspection.table_names()
    applied = MigrationRecorder(connection).applied_migrations()
    assert ("django_app", "0001_initial") in applied


def test_crud_with_the_model(migrated):
    Ticket = _ticket_model()  # noqa: N806

    made = Ticket.objects.create(code="crud-1", title="first", points=3)
    assert Ticket.objects.get(pk=made.pk).title == "first"
    Ticket.objects.filter(pk=made.pk).update(points=5)
    assert Ticket.objects.get(code="crud-1").points == 5
    Ticket.objects.filter(pk=made.pk).delete()
    assert not Ticket.objects.filter(code="crud-1").exists()


def test_a_transaction_with_an_error_rolls_back_and_the_connection_goes_on(migrated):
    Ticket = _ticket_model()  # noqa: N806

    Ticket.objects.create(code="tx-1", title="kept")
    with pytest.raises(IntegrityError):
        _create_in_one_transaction(Ticket, ["tx-2", "tx-1"])  # tx-1 is a duplicate
    assert not Ticket.objects.filter(code="tx-2").exists()
    assert Ticket.objects.filter(code__startswith="tx-").count() == 1


def test_a_query_with_parameters(migrated):
    Ticket = _ticket_model()  # noqa: N806

    Ticket.objects.bulk_create([Ticket(code=f"p-{i}", title=f"param {i}", points=i) for i in range(10)])
    assert list(
        Ticket.objects.filter(points__gte=7, code__startswith="p-").values_list("points", flat=True).order_by("points")
    ) == [7, 8, 9]
    with connection.cursor() as cursor:
        cursor.execute("SELECT sum(points) FROM django_app_ticket WHERE code LIKE %s AND points < %s", ["p-%", 5])
        assert cursor.fetchone() == (10,)
    assert Ticket.objects.raw("SELECT * FROM django_app_ticket WHERE code = %s", ["p-3"])[0].points == 3


def test_the_grant_still_refuses_dcl(migrated):
    with pytest.raises(ProgrammingError, match="refused by guardrail"), connection.cursor() as cursor:
        cursor.execute("GRANT SELECT ON django_app_ticket TO PUBLIC")
