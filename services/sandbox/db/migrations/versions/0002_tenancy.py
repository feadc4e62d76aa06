"""tenancy: each sandbox's tenant, tenant-scoped idempotency keys, and the egress log

Revision ID: 0002_tenancy
Revises: 0001
Create Date: 2026-11-30 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_tenancy"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 0001 left the idempotency key's unique constraint unnamed: PostgreSQL named it itself, and
# SQLite's batch mode needs a naming convention to find it.
_SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
_OLD_UNIQUE = {
    "postgresql": "sandbox_sandboxes_idempotency_key_key",
    "sqlite": "uq_sandbox_sandboxes_idempotency_key",
}
_NEW_UNIQUE = "uq_sandbox_sandboxes_tenant_idempotency_key"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("sandbox_sandboxes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tenant", sa.String(length=256), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column(
                "egress_omitted_connections", sa.BigInteger(), nullable=False, server_default="0"
            )
        )
    # Before tenancy, owner defaulted to the creating token's subject: the best evidence of
    # who created an older sandbox (and every lab could see every sandbox then anyway).
    op.execute("UPDATE sandbox_sandboxes SET tenant = owner")
    with op.batch_alter_table(
        "sandbox_sandboxes",
        schema=None,
        naming_convention=_SQLITE_NAMES if dialect == "sqlite" else None,
    ) as batch_op:
        batch_op.drop_constraint(_OLD_UNIQUE.get(dialect, _OLD_UNIQUE["postgresql"]), "unique")
        batch_op.create_unique_constraint(_NEW_UNIQUE, ["tenant", "idempotency_key"])
        batch_op.create_index(batch_op.f("ix_sandbox_sandboxes_tenant"), ["tenant"], unique=False)

    op.create_table(
        "sandbox_egress",
        sa.Column("sandbox_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=512), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("verdict", sa.String(length=24), nullable=False),
        sa.Column("connections", sa.BigInteger(), nullable=False),
        sa.Column("bytes_sent", sa.BigInteger(), nullable=False),
        sa.Column("bytes_received", sa.BigInteger(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["sandbox_id"], ["sandbox_sandboxes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("sandbox_id", "seq"),
    )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.drop_table("sandbox_egress")
    with op.batch_alter_table("sandbox_sandboxes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sandbox_sandboxes_tenant"))
        batch_op.drop_constraint(_NEW_UNIQUE, "unique")
        batch_op.create_unique_constraint(
            _OLD_UNIQUE.get(dialect, _OLD_UNIQUE["postgresql"]), ["idempotency_key"]
        )
        batch_op.drop_column("egress_omitted_connections")
        batch_op.drop_column("tenant")
