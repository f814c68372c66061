"""Alembic migrations of the state database; `core.store.migrate.upgrade` runs them.

A change to the models in core/store/models.py needs a revision here. Draft it from a database at
head, then read and fix it by hand (tests/unit/core/test_db.py checks that head matches the models):

    python -c 'from alembic import command; from core import migrate; url = "sqlite:////tmp/m.db";
    migrate.upgrade(url); command.revision(migrate.alembic_config(url), "what changed",
    autogenerate=True, rev_id="0003")'

Revision ids are the file's number (0001, 0002, ...). Revisions that alter a table use
`op.batch_alter_table`, which SQLite needs.
"""
