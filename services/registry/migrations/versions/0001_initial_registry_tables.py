"""initial registry tables

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registry_competitions",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=128), nullable=False),
        sa.Column("complexity", sa.String(length=16), nullable=False),
        sa.Column("awards_medals", sa.Boolean(), nullable=False),
        sa.Column("metric_name", sa.String(length=256), nullable=False),
        sa.Column("metric_params", sa.JSON(), nullable=False),
        sa.Column("lower_is_better", sa.Boolean(), nullable=False),
        sa.Column("id_columns", sa.JSON(), nullable=False),
        sa.Column("target_columns", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("description_obfuscated", sa.Text(), nullable=True),
        sa.Column("data_status", sa.String(length=32), nullable=False),
        sa.Column("data_status_reason", sa.Text(), nullable=False),
        sa.Column("answers_path", sa.String(length=1024), nullable=False),
        sa.Column("answers_format", sa.String(length=16), nullable=False),
        sa.Column("answers_size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("answers_sha256", sa.String(length=64), nullable=False),
        sa.Column("bundle_digest", sa.String(length=64), nullable=False),
        sa.Column("public_data_size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("leaderboard_size", sa.Integer(), nullable=False),
        sa.Column("checksums_skipped", sa.Boolean(), nullable=False),
        sa.Column("notes", sa.JSON(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("registry_competitions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_registry_competitions_category"), ["category"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_registry_competitions_complexity"), ["complexity"], unique=False
        )

    op.create_table(
        "registry_leaderboard_entries",
        sa.Column("competition_id", sa.String(length=128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("team_name", sa.String(length=512), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["competition_id"], ["registry_competitions.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("competition_id", "position"),
    )
    op.create_table(
        "registry_public_files",
        sa.Column("competition_id", sa.String(length=128), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["competition_id"], ["registry_competitions.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("competition_id", "path"),
    )
    op.create_table(
        "registry_split_members",
        sa.Column("split", sa.String(length=64), nullable=False),
        sa.Column("competition_id", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["competition_id"], ["registry_competitions.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("split", "competition_id"),
    )
    with op.batch_alter_table("registry_split_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_registry_split_members_competition_id"), ["competition_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("registry_split_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_split_members_competition_id"))

    op.drop_table("registry_split_members")
    op.drop_table("registry_public_files")
    op.drop_table("registry_leaderboard_entries")
    with op.batch_alter_table("registry_competitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_competitions_complexity"))
        batch_op.drop_index(batch_op.f("ix_registry_competitions_category"))

    op.drop_table("registry_competitions")
