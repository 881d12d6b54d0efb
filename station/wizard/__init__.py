"""The issuance wizard apart from its widgets: navigation, page states and the facts pages show (no Qt)."""
