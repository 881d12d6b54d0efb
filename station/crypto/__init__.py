"""Certificates, keys and signatures: the issuing CA, the certificate profile, validation."""
