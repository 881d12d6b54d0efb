"""The issuing CA, the certificate profile, the records and the audit trail."""
