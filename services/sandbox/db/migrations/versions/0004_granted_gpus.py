"""granted GPUs: each sandbox keeps the UUIDs of the GPUs it was leased after release

Revision ID: 0004_granted_gpus
Revises: 0003_quotas
Create Date: 2026-12-05 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_granted_gpus"
down_revision: str | None = "0003_quotas"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sandbox_sandboxes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("granted_gpu_uuids", sa.JSON(), nullable=False, server_default="[]")
        )
    # Sandboxes holding leases now keep them on record; released ones were never kept.
    bind = op.get_bind()
    held: dict[str, list[str]] = {}
    rows = bind.execute(
        sa.text("SELECT sandbox_id, gpu_uuid FROM sandbox_gpu_leases ORDER BY gpu_uuid")
    )
    for sandbox_id, gpu_uuid in rows:
        held.setdefault(sandbox_id, []).append(gpu_uuid)
    table = sa.table("sandbox_sandboxes", sa.column("id"), sa.column("granted_gpu_uuids", sa.JSON))
    for sandbox_id, uuids in held.items():
        bind.execute(table.update().where(table.c.id == sandbox_id).values(granted_gpu_uuids=uuids))


def downgrade() -> None:
    with op.batch_alter_table("sandbox_sandboxes", schema=None) as batch_op:
        batch_op.drop_column("granted_gpu_uuids")
