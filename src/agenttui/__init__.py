"""agenttui: test AI agents in isolated containers, watch them live, package them for deployment."""

__version__ = "0.1.0"


def build_id() -> str:
    """Identifies this installation's code (version, location, newest source file), so a client
    can tell that the personal server it finds runs older code and replace it."""
    import hashlib
    from pathlib import Path

    package = Path(__file__).resolve().parent
    newest = max((p.stat().st_mtime_ns for p in package.rglob("*.py")), default=0)
    return hashlib.sha1(f"{__version__}|{package}|{newest}".encode()).hexdigest()[:16]
