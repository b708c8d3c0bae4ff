"""The embedded demo behind ``sqlgate up``: a sample database, its roles, settings and policy.

Everything lives under ``data_dir``: the PostgreSQL cluster (``demo-pg/``), the
admin secret (``secrets/demo-admin``, mode 0600), ``sqlgate.yaml`` and
``policy.yaml``. Running ``up`` again reuses them, so data and keys persist.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlgate.embedded import EmbeddedPostgres

DEMO_DB = "demo"
ADMIN_ROLE = "sqlgate_admin"
OWNER_ROLE = "demo_owner"

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS customers (
    id     integer PRIMARY KEY,
    name   text NOT NULL,
    email  text NOT NULL,
    ssn    text,
    region text NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    id          integer PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers (id),
    total       numeric(10, 2) NOT NULL,
    status      text NOT NULL,
    created_at  timestamptz NOT NULL
);
INSERT INTO customers (id, name, email, ssn, region)
SELECT i,
       (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Frances','Ken'])[1 + i % 8] || ' ' || i,
       'customer' || i || '@example.com',
       lpad((i * 7919 % 1000000000)::text, 9, '0'),
       (ARRAY['eu','us','apac'])[1 + i % 3]
FROM generate_series(1, 200) AS i
ON CONFLICT (id) DO NOTHING;
INSERT INTO orders (id, customer_id, total, status, created_at)
SELECT i, 1 + i % 200, round((i * 37 % 50000) / 100.0, 2),
       (ARRAY['paid','shipped','refunded'])[1 + i % 3],
       timestamptz '2026-01-01' + i * interval '3 hours'
FROM generate_series(1, 1000) AS i
ON CONFLICT (id) DO NOTHING;
ALTER TABLE customers OWNER TO {owner};
ALTER TABLE orders OWNER TO {owner};
GRANT USAGE ON SCHEMA public TO {read}, {write};
GRANT SELECT ON ALL TABLES IN SCHEMA public TO {read};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {write};
GRANT CREATE ON SCHEMA public TO {write};
"""

POLICY_YAML = """\
# The demo policy: analysts read (emails and SSNs masked), on-call engineers
# write after a DBA approves. Everything else is denied.
# Analysts are served through the gateway only (psql to it, /v1/query): a plain
# database login (`sqlgate creds demo`) would bypass their masks, so it is refused.
# DBAs may take one (their rule has no masks or guardrails; direct_login: true
# says so where a reviewer sees it).
rules:
  - name: analysts-read-demo
    who: {groups: [analysts]}
    databases: [demo]
    role: read
    max_ttl: 1h
    guardrails: {deny: [write, ddl, dcl, admin]}
    mask: {"customers.email": email, "*.ssn": redact}
  - name: dba-read-demo
    who: {groups: [dba]}
    databases: [demo]
    role: read
    max_ttl: 8h
    direct_login: true
  - name: oncall-write-with-approval
    who: {groups: [oncall]}
    databases: [demo]
    role: write
    max_ttl: 2h
    approval: {required: true, approvers: {groups: [dba]}, max_duration: 2h}
"""


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo keeps its files."""

    data_dir: Path

    @property
    def pg(self) -> Path:
        """The embedded cluster."""
        return self.data_dir / "demo-pg"

    @property
    def admin_secret(self) -> Path:
        """The admin password file (rotated by ``sqlgate rotate-admin demo``)."""
        return self.data_dir / "secrets" / "demo-admin"

    @property
    def config(self) -> Path:
        """The generated settings file."""
        return self.data_dir / "sqlgate.yaml"

    @property
    def policy(self) -> Path:
        """The generated policy file."""
        return self.data_dir / "policy.yaml"


def start_demo_database(paths: DemoPaths) -> EmbeddedPostgres:
    """Start (or restart) the demo cluster and make sure schema, data and roles exist."""
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    server = EmbeddedPostgres(paths.pg).start()
    admin_password = _admin_password(paths.admin_secret)
    for role in ("demo_read", "demo_write", OWNER_ROLE):
        server.create_role(role, options="NOLOGIN")
    server.create_role(ADMIN_ROLE, admin_password, options="LOGIN CREATEROLE")
    server.psql(
        f"ALTER ROLE {ADMIN_ROLE} PASSWORD '{admin_password}';"
        f" GRANT pg_signal_backend TO {ADMIN_ROLE};"
        f" GRANT demo_read, demo_write, {OWNER_ROLE} TO {ADMIN_ROLE} WITH ADMIN OPTION;"
    )
    server.create_database(DEMO_DB, owner=OWNER_ROLE)
    server.psql(schema_sql(), dbname=DEMO_DB)
    return server


def schema_sql(owner: str = OWNER_ROLE, read: str = "demo_read", write: str = "demo_write") -> str:
    """The sample schema and data, owned by ``owner``, readable by ``read``, writable by ``write``."""
    return SCHEMA_SQL.format(owner=owner, read=read, write=write)


def demo_policy(*, mysql: bool) -> str:
    """The demo policy; with ``mysql`` its rules also name ``demo_mysql`` (``sqlgate up --mysql``)."""
    if not mysql:
        return POLICY_YAML
    return POLICY_YAML.replace("    databases: [demo]\n", "    databases: [demo, demo_mysql]\n")


def write_demo_files(
    paths: DemoPaths,
    server: EmbeddedPostgres,
    *,
    postgres: str,
    http: str,
    mysql: tuple[str, str] | None = None,
) -> None:
    """Write the settings and policy files the demo gateway runs on (policy kept if edited).

    ``mysql`` is the MySQL listener's host:port and the YAML of its ``databases``
    entry (``sqlgate up --mysql``, see ``demo_mysql``).
    """
    listen = f'postgres: "{postgres}", http: "{http}"' + (f', mysql: "{mysql[0]}"' if mysql else "")
    mysql_database = mysql[1] if mysql else ""
    policy = demo_policy(mysql=mysql is not None)
    if not paths.policy.exists() or (mysql and paths.policy.read_text() == POLICY_YAML):  # new, or never edited
        paths.policy.write_text(policy)
    paths.config.write_text(
        "# Generated by `sqlgate up`; rewritten on each start.\n"
        f"data_dir: {paths.data_dir}\n"
        "state: sqlite\n"
        f"listen: {{{listen}}}\n"
        "identity:\n  dev_issuer: true\n"
        "databases:\n"
        f"  {DEMO_DB}:\n"
        "    engine: postgres\n"
        f"    host: {server.host}\n"
        f"    port: {server.port}\n"
        f"    dbname: {DEMO_DB}\n"
        f"    admin_user: {ADMIN_ROLE}\n"
        f"    admin_password_file: {paths.admin_secret}\n"
        f"    owner_role: {OWNER_ROLE}\n"
        "    roles: {read: demo_read, write: demo_write}\n"
        f"{mysql_database}"
        f"policy_file: {paths.policy}\n"
    )


def _admin_password(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
