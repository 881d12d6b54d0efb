"""The station's records: applicants, requests, credentials, operators, audit events (SQLAlchemy 2)."""
