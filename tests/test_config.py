import pytest

from text2token.config import CONFIG_DIR, Config, load_config, parse_overrides
from text2token.errors import Text2TokenError


def test_shipped_configs_validate():
    for name in ("default.yaml", "smoke.yaml"):
        cfg = load_config(CONFIG_DIR / name)
        assert [s.targets for s in cfg.stages] == ["data", "model"]


def test_builtin_defaults_equal_default_yaml():
    """Without the repo's configs/ (a wheel install), `text2token train` falls back to the same recipe."""
    assert Config().model_dump(exclude={"output_dir"}) == load_config(CONFIG_DIR / "default.yaml").model_dump(
        exclude={"output_dir"})


def test_overrides_apply_with_types():
    cfg = load_config(CONFIG_DIR / "smoke.yaml", ["train.lr=3e-4", "stages.1.steps=7", "model.pooling=mean",
                                                  "data.max_texts=null"])
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.stages[1].steps == 7
    assert cfg.model.pooling == "mean"
    assert cfg.data.max_texts is None


@pytest.mark.parametrize("override, message", [
    ("train.lrr=1", "unknown key 'train.lrr'"),
    ("train.lr=fast", "train.lr"),
    ("model.pooling=max", "model.pooling"),
    ("model.prompt=no slot", "{text}"),
    ("stages.5.steps=1", "no item 5"),
    ("novalue", "key=value"),
])
def test_bad_overrides_are_one_line_errors(override, message):
    with pytest.raises(Text2TokenError, match=None) as err:
        load_config(CONFIG_DIR / "smoke.yaml", [override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_yaml_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  batch_size: many\n")
    with pytest.raises(Text2TokenError, match="train.batch_size"):
        load_config(bad)
    bad.write_text("trian: {}\n")
    with pytest.raises(Text2TokenError, match="unknown key 'trian'"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(Text2TokenError, match="mapping"):
        load_config(bad)
    with pytest.raises(Text2TokenError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_duplicate_stage_names_refused():
    with pytest.raises(Exception, match="unique"):
        Config.model_validate({"stages": [{"name": "a", "targets": "data", "steps": 1},
                                          {"name": "a", "targets": "model", "steps": 1}]})


def test_parse_overrides_numbers():
    assert parse_overrides(["a=1e-4", "b=3", "c=true", "d=text"]) == [("a", 1e-4), ("b", 3), ("c", True), ("d", "text")]
