"""Alembic environment: runs migrations on the connection the workbench hands over."""

from alembic import context

from workbench.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through workbench.store.ControlPlane.upgrade(), which passes a connection")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
