"""Target token distributions: data-driven (the text's own tokens) and model-derived (the backbone's)."""

from .data_driven import build_data_driven
from .model_derived import build_model_derived
from .store import TargetStore
from .vocab import VocabFilter

__all__ = ["TargetStore", "VocabFilter", "build_data_driven", "build_model_derived"]
