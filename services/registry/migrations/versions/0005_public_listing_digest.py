"""registry_competitions: public_listing_digest and public_file_count

Revision ID: 0005_public_listing_digest
Revises: 0004_audit_chain
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from mleb.public_listing import public_listing_digest

revision: str = "0005_public_listing_digest"
down_revision: str | None = "0004_audit_chain"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN (SQLite has it): batch mode would copy the table.
    op.add_column(
        "registry_competitions",
        sa.Column("public_listing_digest", sa.String(length=64), server_default="", nullable=False),
    )
    op.add_column(
        "registry_competitions",
        sa.Column("public_file_count", sa.BigInteger(), server_default="0", nullable=False),
    )
    # Competitions imported before: their digest from the stored listing.
    connection = op.get_bind()
    competitions = sa.table(
        "registry_competitions",
        sa.column("id", sa.String),
        sa.column("public_listing_digest", sa.String),
        sa.column("public_file_count", sa.BigInteger),
    )
    files = sa.table(
        "registry_public_files",
        sa.column("competition_id", sa.String),
        sa.column("path", sa.String),
        sa.column("size_bytes", sa.BigInteger),
        sa.column("sha256", sa.String),
    )
    for (competition_id,) in connection.execute(sa.select(competitions.c.id)).all():
        listing = connection.execute(
            sa.select(files.c.path, files.c.size_bytes, files.c.sha256).where(
                files.c.competition_id == competition_id
            )
        ).all()
        connection.execute(
            competitions.update()
            .where(competitions.c.id == competition_id)
            .values(
                public_listing_digest=public_listing_digest(tuple(row) for row in listing),
                public_file_count=len(listing),
            )
        )


def downgrade() -> None:
    # Not batch mode: on SQLite that copies the table, and dropping the old copy would
    # cascade to every competition's public files.
    op.drop_column("registry_competitions", "public_file_count")
    op.drop_column("registry_competitions", "public_listing_digest")
