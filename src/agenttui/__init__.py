"""agenttui: test AI agents in isolated containers, watch them live, package them for deployment."""

__version__ = "0.1.0"


def build_id() -> str:
    """Identifies this installation's code (version, location, newest source file), so a client
    can tell that the personal server it finds runs older code and replace it. Cheap: every
    headless command's start reads it."""
    import os
    import zlib

    package = os.path.dirname(os.path.realpath(__file__))
    newest = 0
    folders = [package]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        folders.append(entry.path)
                elif entry.name.endswith(".py"):
                    newest = max(newest, entry.stat(follow_symlinks=False).st_mtime_ns)
    return f"{__version__}-{zlib.crc32(package.encode()):08x}-{newest:x}"
