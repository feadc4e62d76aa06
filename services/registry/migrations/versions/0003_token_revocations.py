"""registry_token_revocations: tokens revoked before they expire

Revision ID: 0003_token_revocations
Revises: 0002
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_token_revocations"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registry_token_revocations",
        # "jti:<token id>" or "sandbox:<sandbox id>".
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("token_id", sa.String(length=128), nullable=False),
        sa.Column("sandbox_id", sa.String(length=128), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("reason", sa.String(length=512), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index(
        "ix_registry_token_revocations_expires_at", "registry_token_revocations", ["expires_at"]
    )


def downgrade() -> None:
    op.drop_index(
        "ix_registry_token_revocations_expires_at", table_name="registry_token_revocations"
    )
    op.drop_table("registry_token_revocations")
