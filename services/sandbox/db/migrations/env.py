from alembic import context

from services.common.db import run_migration_env
from services.sandbox.db.schema import Base

run_migration_env(context, Base.metadata)
