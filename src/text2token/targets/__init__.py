"""Target token distributions: data-driven (the text's own tokens) and model-derived (the backbone's)."""

from .data_driven import DataDrivenTargets
from .model_derived import ModelDerivedTargets
from .store import TargetStore
from .vocab import VocabFilter

__all__ = ["DataDrivenTargets", "ModelDerivedTargets", "TargetStore", "VocabFilter"]
