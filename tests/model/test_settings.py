"""The encoder's settings: one definition, its defaults shared by the run config, one-line errors."""

import pytest

from text2token.config import ModelConfig, load_config
from text2token.errors import Text2TokenError
from text2token.model import pooling as pooling_module
from text2token.model.attention import ATTENTION_MODES
from text2token.model.pooling import POOLINGS
from text2token.model.settings import DEFAULT_PROMPT, EncoderSettings


def test_config_defaults_are_the_encoder_defaults():
    assert ModelConfig().encoder_settings() == EncoderSettings()
    assert EncoderSettings() == EncoderSettings(pooling="eos", attention="causal", prompt=DEFAULT_PROMPT,
                                                max_length=80)


def test_config_turns_into_settings_field_for_field():
    cfg = load_config(None, ["model.pooling=mean", "model.attention=bidirectional", "model.prompt=Q {text}",
                             "model.max_length=33"])
    assert cfg.model.encoder_settings() == EncoderSettings("mean", "bidirectional", "Q {text}", 33)


@pytest.mark.parametrize("kwargs, message", [
    ({"pooling": "max"}, f"unknown pooling 'max' (choose from {', '.join(POOLINGS)})"),
    ({"attention": "sideways"}, f"unknown attention 'sideways' (choose from {', '.join(ATTENTION_MODES)})"),
    ({"prompt": "no slot"}, 'prompt must contain "{text}" exactly once'),
    ({"prompt": "{text} and {text}"}, 'prompt must contain "{text}" exactly once'),
    ({"max_length": 4}, "max_length must be an integer >= 8, got 4"),
])
def test_bad_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(Text2TokenError) as err:
        EncoderSettings(**kwargs)
    assert str(err.value) == message


def test_config_reports_the_same_rule_with_its_key():
    with pytest.raises(Text2TokenError) as err:
        load_config(None, ["model.pooling=max"])
    assert "model.pooling" in str(err.value) and "choose from mean, eos, weighted_mean" in str(err.value)


def test_saved_settings_with_unknown_keys_are_refused():
    assert EncoderSettings.from_dict(EncoderSettings().to_dict()) == EncoderSettings()
    with pytest.raises(Text2TokenError, match="unknown encoder setting.*colour"):
        EncoderSettings.from_dict({**EncoderSettings().to_dict(), "colour": "blue"})


def test_a_registered_pooling_is_known_everywhere(monkeypatch):
    """A new pooling is one registry entry: the settings and the run config accept it at once."""
    monkeypatch.setitem(POOLINGS, "first", pooling_module.Pooling("first", lambda h, m: h[:, 0], None, ""))
    assert EncoderSettings(pooling="first").pooling == "first"
    assert load_config(None, ["model.pooling=first"]).model.pooling == "first"
