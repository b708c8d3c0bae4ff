"""Which PostgreSQL statements and functions fall in which class.

Statement kinds not listed are classed ``ddl``, so an unfamiliar statement is
refused by any guardrail that refuses schema changes (fail closed).
"""

from __future__ import annotations

READ = frozenset({"read"})
WRITE = frozenset({"write"})
DDL = frozenset({"ddl"})
DCL = frozenset({"dcl"})
ADMIN = frozenset({"admin"})
TRANSACTION = frozenset({"transaction"})
SESSION = frozenset({"session"})

STATEMENT_CLASSES: dict[str, frozenset[str]] = {
    "SelectStmt": READ,
    "VariableShowStmt": READ,
    "FetchStmt": READ,
    "ClosePortalStmt": READ,
    "DeclareCursorStmt": READ,
    "ExplainStmt": READ,
    "InsertStmt": WRITE,
    "UpdateStmt": WRITE,
    "DeleteStmt": WRITE,
    "MergeStmt": WRITE,
    "TruncateStmt": WRITE,
    "CallStmt": WRITE,  # a procedure may do anything its owner may; the database's own grants still apply
    "LockStmt": WRITE,
    "RefreshMatViewStmt": WRITE,
    "CreateTableAsStmt": frozenset({"ddl", "write"}),
    "TransactionStmt": TRANSACTION,
    "ConstraintsSetStmt": TRANSACTION,
    "VariableSetStmt": SESSION,
    "DiscardStmt": SESSION,
    "DeallocateStmt": SESSION,
    "ListenStmt": SESSION,
    "UnlistenStmt": SESSION,
    "NotifyStmt": SESSION,
    "ExecuteStmt": SESSION,  # plus whatever the prepared statement does; see check()
    "DoStmt": DDL,
    **dict.fromkeys(
        (
            "GrantStmt",
            "GrantRoleStmt",
            "CreateRoleStmt",
            "AlterRoleStmt",
            "AlterRoleSetStmt",
            "DropRoleStmt",
            "AlterDefaultPrivilegesStmt",
            "ReassignOwnedStmt",
            "DropOwnedStmt",
            "CreateUserMappingStmt",
            "AlterUserMappingStmt",
            "DropUserMappingStmt",
            "SecLabelStmt",
            "AlterOwnerStmt",
        ),
        DCL,
    ),
    **dict.fromkeys(
        (
            "AlterSystemStmt",
            "CreateExtensionStmt",
            "AlterExtensionStmt",
            "AlterExtensionContentsStmt",
            "LoadStmt",
            "CreatedbStmt",
            "DropdbStmt",
            "AlterDatabaseStmt",
            "AlterDatabaseSetStmt",
            "AlterDatabaseRefreshCollStmt",
            "CreateTableSpaceStmt",
            "DropTableSpaceStmt",
            "AlterTableSpaceOptionsStmt",
            "AlterTableMoveAllStmt",
            "CreateSubscriptionStmt",
            "AlterSubscriptionStmt",
            "DropSubscriptionStmt",
            "CreatePublicationStmt",
            "AlterPublicationStmt",
            "CreateEventTrigStmt",
            "AlterEventTrigStmt",
            "CreateFdwStmt",
            "AlterFdwStmt",
            "CreateForeignServerStmt",
            "AlterForeignServerStmt",
            "ImportForeignSchemaStmt",
            "CreatePLangStmt",
            "CreateAmStmt",
            "VacuumStmt",
            "ClusterStmt",
            "ReindexStmt",
            "CheckPointStmt",
            "AlterCollationStmt",
        ),
        ADMIN,
    ),
}

# DROP of these object types is administration, not schema work.
ADMIN_DROP_TYPES = frozenset(
    {
        "OBJECT_EXTENSION",
        "OBJECT_FOREIGN_SERVER",
        "OBJECT_FDW",
        "OBJECT_EVENT_TRIGGER",
        "OBJECT_PUBLICATION",
        "OBJECT_SUBSCRIPTION",
        "OBJECT_LANGUAGE",
        "OBJECT_ACCESS_METHOD",
    }
)

# Functions that read or write server files, signal or stop backends, or manage the server.
ADMIN_FUNCTIONS = frozenset(
    {
        "pg_read_file",
        "pg_read_binary_file",
        "pg_stat_file",
        "pg_ls_dir",
        "pg_ls_logdir",
        "pg_ls_waldir",
        "pg_ls_tmpdir",
        "pg_ls_archive_statusdir",
        "pg_ls_logicalsnapdir",
        "pg_ls_logicalmapdir",
        "pg_ls_replslotdir",
        "pg_ls_summariesdir",
        "pg_logdir_ls",
        "pg_file_write",
        "pg_file_rename",
        "pg_file_unlink",
        "pg_file_sync",
        "lo_import",
        "lo_export",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_signal_backend",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_promote",
        "pg_switch_wal",
        "pg_create_restore_point",
        "pg_backup_start",
        "pg_backup_stop",
        "pg_start_backup",
        "pg_stop_backup",
        "pg_create_physical_replication_slot",
        "pg_create_logical_replication_slot",
        "pg_drop_replication_slot",
        "pg_copy_physical_replication_slot",
        "pg_copy_logical_replication_slot",
        "pg_replication_slot_advance",
        "pg_logical_emit_message",
        "pg_log_backend_memory_contexts",
        "pg_wal_replay_pause",
        "pg_wal_replay_resume",
        "pg_import_system_collations",
        "pg_sync_replication_slots",
    }
)
ADMIN_FUNCTION_PREFIXES = ("dblink", "pg_replication_origin_", "pg_ls_")

# Functions that change data although they are called from a SELECT.
WRITE_FUNCTIONS = frozenset(
    {"nextval", "setval", "lo_create", "lo_creat", "lo_unlink", "lo_put", "lo_from_bytea", "lo_truncate", "lowrite"}
)

# Functions that run SQL given to them as text: what they run cannot be checked.
DYNAMIC_SQL_FUNCTIONS = frozenset({"query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema"})

# Settings that change who the session is.
IDENTITY_SETTINGS = frozenset({"role", "session_authorization"})


def is_identity_setting(name: str) -> bool:
    """True when a ``set_config`` setting name changes who the session is (any case, around whitespace)."""
    return name.strip().lower() in IDENTITY_SETTINGS


def function_classes(name: str) -> frozenset[str]:
    """The classes a call of function ``name`` (bare, lower-case) adds to its statement."""
    if name in ADMIN_FUNCTIONS or name.startswith(ADMIN_FUNCTION_PREFIXES):
        return ADMIN
    if name in WRITE_FUNCTIONS:
        return WRITE
    return frozenset()
