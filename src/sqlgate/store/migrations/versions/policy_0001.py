"""Policy: access requests and their approvals.

Revision ID: policy_0001
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "policy_0001"
down_revision = "0001_foundation"
branch_labels = ("policy",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_access_requests",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("principal_key", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("issuer", sa.Text, nullable=False),
        sa.Column("requester_name", sa.Text, nullable=False),
        sa.Column("database", sa.String(64), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("duration_seconds", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("min_approvals", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.Text, nullable=True),
        sa.Column("decision_reason", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_policy_access_requests"),
    )
    op.create_index(
        "ix_policy_access_requests_principal_key_database", "policy_access_requests", ["principal_key", "database"]
    )
    op.create_index("ix_policy_access_requests_status_expires_at", "policy_access_requests", ["status", "expires_at"])
    op.create_table(
        "policy_request_approvals",
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("approver_key", sa.Text, nullable=False),
        sa.Column("approver_name", sa.Text, nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["policy_access_requests.id"],
            name="fk_policy_request_approvals_request_id_policy_access_requests",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", "approver_key", name="pk_policy_request_approvals"),
    )


def downgrade() -> None:
    op.drop_table("policy_request_approvals")
    op.drop_index("ix_policy_access_requests_status_expires_at", table_name="policy_access_requests")
    op.drop_index("ix_policy_access_requests_principal_key_database", table_name="policy_access_requests")
    op.drop_table("policy_access_requests")
