"""The issuing CA: certificate profile, CA key (file or PKCS#11), signing, CRLs (docs/ca-records.md)."""
