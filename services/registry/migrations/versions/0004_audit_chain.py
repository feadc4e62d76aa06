"""registry_audit_records: the hash-chained audit log

Revision ID: 0004_audit_chain
Revises: 0003_token_revocations
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_audit_chain"
down_revision: str | None = "0003_token_revocations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registry_audit_records",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("tenant", sa.String(length=256), nullable=False),
        sa.Column("tenant_seq", sa.BigInteger(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_registry_audit_records_tenant", "registry_audit_records", ["tenant"])


def downgrade() -> None:
    op.drop_index("ix_registry_audit_records_tenant", table_name="registry_audit_records")
    op.drop_table("registry_audit_records")
