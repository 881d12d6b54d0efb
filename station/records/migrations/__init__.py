"""Alembic migrations of the station's records (run by :func:`station.records.database.migrate`)."""
