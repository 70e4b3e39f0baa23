"""The bundles shipped inside the package (``edge/default_bundles/*.xeb``) and the camera each runs on.

``xenoedge run --bundle surgical`` (or ``crop``), the handheld scan and edge-bench name them by
these short names; docs/default_models.md says how they are made.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_BUNDLES", "default_bundle"]

#: Short name -> (camera string of the built-in simulated camera, sensor profile name).
DEFAULT_BUNDLES = {"surgical": ("sim:surgical", "tivita"), "crop": ("sim:crop", "mosaic-5x5-nir")}


def default_bundle(name: str) -> Path:
    """Path of a bundle shipped in the package (``edge/default_bundles/<name>.xeb``)."""
    from importlib import resources

    return Path(str(resources.files("xenoedge.edge").joinpath("default_bundles", f"{name}.xeb")))
