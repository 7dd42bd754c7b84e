"""Qt-free logic of the SpineMetsClassifier module (features, models, statistics).

Submodules are imported lazily so that, e.g., ``SpineMetsClassifierLib.evaluation``
works without loading MRML.
"""

from typing import Any

__all__ = ["SpineMetsClassifierLogic"]


def __getattr__(name: str) -> Any:
    if name == "SpineMetsClassifierLogic":
        from .logic import SpineMetsClassifierLogic

        return SpineMetsClassifierLogic
    raise AttributeError(name)
