"""quotas: each sandbox's disk quota, /tmp size and log budget, and what it used of them

Revision ID: 0003_quotas
Revises: 0002_tenancy
Create Date: 2026-12-05 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_quotas"
down_revision: str | None = "0002_tenancy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG = (
    "disk_bytes",
    "tmp_bytes",
    "log_bytes",
    "peak_disk_bytes",
    "agent_log_bytes",
    "log_lines_dropped",
)


def upgrade() -> None:
    with op.batch_alter_table("sandbox_sandboxes", schema=None) as batch_op:
        for name in _BIG:
            batch_op.add_column(
                sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
            )
        batch_op.add_column(
            sa.Column("disk_enforcement", sa.String(length=40), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column(
                "stop_failure_reason", sa.String(length=32), nullable=False, server_default=""
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("sandbox_sandboxes", schema=None) as batch_op:
        batch_op.drop_column("stop_failure_reason")
        batch_op.drop_column("disk_enforcement")
        for name in reversed(_BIG):
            batch_op.drop_column(name)
