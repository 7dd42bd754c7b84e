"""Qt-free logic of the SpineMetsSegment module (usable from plain Python and Slicer).

Imported lazily so light submodules do not load MRML.
"""

from typing import Any

__all__ = ["LoadedCase", "RegionGrowingParameters", "SegmentResult", "LesionSegmentationLogic"]


def __getattr__(name: str) -> Any:
    if name == "RegionGrowingParameters":
        from . import region_growing

        return region_growing.RegionGrowingParameters
    if name in __all__:
        from . import logic

        return getattr(logic, name)
    raise AttributeError(name)
