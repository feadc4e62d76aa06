"""attestations: each sandbox's first audit-chain seq and its signed attestation

Revision ID: 0005_attestations
Revises: 0004_granted_gpus
Create Date: 2026-12-05 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_attestations"
down_revision: str | None = "0004_granted_gpus"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sandbox_sandboxes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("audit_first_seq", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("attestation", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column("attestation_error", sa.String(length=512), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("sandbox_sandboxes", schema=None) as batch_op:
        batch_op.drop_column("attestation_error")
        batch_op.drop_column("attestation")
        batch_op.drop_column("audit_first_seq")
