"""Where the top-level data folders (templates/, styles/) are, in a checkout or an installed wheel.

The design card keeps them at the repository's top level; the wheel force-includes them as
agenttui/<name> (see pyproject.toml), so both places are looked up.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def resource_dir(name: str) -> Path:
    """The folder `name` (e.g. "templates"): the repository's top-level copy in a source
    checkout or editable install, else the copy packaged inside agenttui/."""
    # src/agenttui/core/resources.py -> the repository root is two levels above the package.
    if _PACKAGE_DIR.parent.name == "src":
        checkout = _PACKAGE_DIR.parent.parent / name
        if checkout.is_dir():
            return checkout
    packaged = _PACKAGE_DIR / name
    if packaged.is_dir():
        return packaged
    raise FileNotFoundError(
        f"agenttui's {name}/ folder is missing: looked in the source checkout "
        f"({_PACKAGE_DIR.parent.parent / name}) and the installed package ({packaged}); "
        "reinstall agenttui"
    )
