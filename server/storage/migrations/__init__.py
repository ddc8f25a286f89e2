"""Alembic migrations for the metareg database, shipped inside the package."""
