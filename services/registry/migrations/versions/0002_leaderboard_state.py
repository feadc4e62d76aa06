"""registry_competitions.leaderboard_state

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows imported earlier keep "": their state is implied by leaderboard_size.
    with op.batch_alter_table("registry_competitions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("leaderboard_state", sa.String(length=16), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("registry_competitions", schema=None) as batch_op:
        batch_op.drop_column("leaderboard_state")
