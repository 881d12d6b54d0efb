"""The reference phone client: what a phone app does with the station's QR code (docs/phone.md)."""
