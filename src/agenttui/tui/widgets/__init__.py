"""TUI widgets, one per module."""
