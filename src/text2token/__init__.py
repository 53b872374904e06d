"""Text2Token: turn a decoder LLM into a text embedder by predicting token target distributions."""

from .errors import Text2TokenError

__version__ = "0.1.0"
__all__ = ["Encoder", "EncoderSettings", "Text2TokenError", "load_config", "train", "__version__"]


def __getattr__(name):  # keep `import text2token` light: torch/transformers load on first use
    if name == "Encoder":
        from .model.encoder import Encoder

        return Encoder
    if name == "EncoderSettings":
        from .model.settings import EncoderSettings

        return EncoderSettings
    if name == "load_config":
        from .config import load_config

        return load_config
    if name == "train":
        from .training.loop import train

        return train
    raise AttributeError(name)
