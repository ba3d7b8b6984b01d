"""The one place that lists systems: a literal dict from key to `SystemSpec`.

Importing this module imports each system's `__init__` only (cheap: heavy optional
dependencies are imported inside the functions that need them).
"""

from __future__ import annotations

from tenfold.core.errors import InputError
from tenfold.core.registry import SystemSpec
from tenfold.systems import harmonize, qae
from tenfold.systems import maskfocal
from tenfold.systems import fctl
from tenfold.systems import rulenet
from tenfold.systems import doorping
from tenfold.systems import ssdg
from tenfold.systems import cmt
from tenfold.systems import drumlm
from tenfold.systems import reft

SYSTEMS: dict[str, SystemSpec] = {
    "qae": qae.SPEC,
    "harmonize": harmonize.SPEC,
    "maskfocal": maskfocal.SPEC,
    "fctl": fctl.SPEC,
    "rulenet": rulenet.SPEC,
    "doorping": doorping.SPEC,
    "ssdg": ssdg.SPEC,
    "cmt": cmt.SPEC,
    "drumlm": drumlm.SPEC,
    "reft": reft.SPEC,
}


def get_system(name: str) -> SystemSpec:
    """The spec of system `name`; an unknown name is an InputError listing the valid ones."""
    if name not in SYSTEMS:
        raise InputError(f"unknown system {name!r}; valid systems: {', '.join(sorted(SYSTEMS))}")
    return SYSTEMS[name]
