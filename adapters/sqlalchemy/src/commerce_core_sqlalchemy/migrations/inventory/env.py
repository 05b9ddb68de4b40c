"""Alembic environment of the inventory store: run by `commerce_core_sqlalchemy.migrations`."""

from alembic import context

from commerce_core_sqlalchemy.migrations import run_environment

run_environment(context, "inventory")
