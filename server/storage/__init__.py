"""Persistence: the tables, sessions and bulk statements of SQLAlchemy, and the migrations."""
