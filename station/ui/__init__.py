"""The Qt interface (PySide6)."""
