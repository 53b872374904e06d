"""The model card (README.md) in every saved encoder and sentence-transformers export.

It states the backbone and its licence, the recipe (settings, stages), the training data, the before/after
scores when the run has an ``eval.json``, and how to load the model. No paths or times: equal runs, equal cards.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from pathlib import Path

import yaml

from ..files import atomic_write

log = logging.getLogger(__name__)

CARD_FILE = "README.md"
UNKNOWN_LICENCE = "unknown: check the backbone's own terms"


def backbone_licence(backbone: str | None) -> str:
    """The licence of a built-in backbone, or of a model directory whose README states one; else unknown."""
    from .backbone import LICENCES

    if backbone in LICENCES:
        return LICENCES[backbone]
    readme = Path(backbone or "").expanduser() / "README.md" if backbone else None
    if readme is not None and readme.is_file():
        head = readme.read_text(encoding="utf-8", errors="replace").split("\n---", 1)[0]
        for line in head.splitlines():
            if line.startswith("license:") and line.split(":", 1)[1].strip():
                return line.split(":", 1)[1].strip()
    return UNKNOWN_LICENCE


def run_dir_of(model_dir: str | Path) -> Path | None:
    """The run directory a model was saved in (``RUN/final``), when it has its config."""
    model_dir = Path(model_dir)
    return model_dir.parent if model_dir.name == "final" and (model_dir.parent / "config.yaml").is_file() else None


def _read(path: Path, parse) -> dict | None:
    try:
        return parse(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError, yaml.YAMLError) as e:
        log.warning("model card: %s unreadable (%s); left out", path, e)
        return None


def card_facts(meta: dict, run_dir: Path | None = None) -> dict:
    """What the card states: the model's text2token.json (``meta``) plus the run's config and eval.json."""
    from .backbone import LICENCES

    config = (_read(run_dir / "config.yaml", yaml.safe_load) if run_dir else None) or {}
    scores = (_read(run_dir / "eval.json", json.loads) if run_dir else None) or {}
    data = config.get("data") or {}
    corpus = meta.get("corpus", data.get("corpus"))
    stages = config.get("stages") or [{"name": name} for name in meta.get("stages", [])]
    backbone = meta.get("backbone") or (config.get("model") or {}).get("backbone")
    shown = backbone if backbone is None or backbone in LICENCES else Path(backbone).name  # no local paths
    return {"backbone": shown, "licence": backbone_licence(backbone), "settings": meta.get("settings", {}),
            "dtype": meta.get("dtype"), "stages": stages,
            "corpus": Path(corpus).name if corpus and corpus != "wiki" else corpus,
            "texts": meta.get("texts"), "max_texts": data.get("max_texts"),
            "before": scores.get("before"), "after": scores.get("after"),
            "heldout_articles": scores.get("heldout_articles")}


def _recipe(facts: dict) -> list[str]:
    s = facts["settings"]
    lines = ["## Recipe", "", f"- pooling: `{s.get('pooling')}`", f"- attention: `{s.get('attention')}`",
             f"- prompt: `{s.get('prompt')}`", f"- max length: {s.get('max_length')} tokens (prompt included)"]
    if facts.get("dtype"):
        lines.append(f"- weights: {facts['dtype']}")
    if facts["stages"]:
        lines += ["", "| stage | objective | targets | steps |", "|---|---|---|---|"]
        for st in facts["stages"]:
            objective = st.get("objective", "kl" if "targets" in st else "?")
            lines.append(f"| {st.get('name', '?')} | {objective} | {st.get('targets', '-')} | {st.get('steps', '?')} |")
    return lines


def _data_and_scores(facts: dict) -> list[str]:
    corpus = facts["corpus"] or "unknown"
    corpus = "wiki (Wikipedia lead extracts, CC BY-SA, held-out articles excluded)" if corpus == "wiki" else corpus
    texts = facts["texts"] if facts["texts"] is not None else (f"at most {facts['max_texts']}"
                                                               if facts["max_texts"] else "unknown")
    lines = ["## Training data", "", f"- corpus: {corpus}", f"- texts: {texts}", "", "No labels were used."]
    before, after = facts["before"], facts["after"]
    if before or after:
        n = facts["heldout_articles"]
        lines += ["", "## Scores", "", f"Held-out Wikipedia articles{f' ({n})' if n else ''}, before and after "
                  "training (the backbone with the same pooling and prompt).", "",
                  "| metric | before | after |", "|---|---|---|"]
        for key in sorted(set(before or {}) | set(after or {})):
            cells = [f"{d[key]:.4f}" if isinstance((d or {}).get(key), (int, float)) else "-" for d in (before, after)]
            lines.append(f"| {key} | {cells[0]} | {cells[1]} |")
    return lines


def _usage(kind: str) -> list[str]:
    if kind == "sentence-transformers":
        return ["## Use", "", "```python", "from sentence_transformers import SentenceTransformer", "",
                'model = SentenceTransformer("DIR")  # this directory; stock classes, no custom code',
                'vectors = model.encode(["a text", "another text"])', "```", "",
                "The prompt is in the tokenizer, so pass plain texts. To serve the text2token model this was exported "
                "from (an OpenAI-compatible `/v1/embeddings`): `text2token serve --model SOURCE_DIR`."]
    return ["## Use", "", "```python", "from text2token import Encoder", "",
            'encoder = Encoder.load("DIR")  # this directory', 'vectors = encoder.encode(["a text", "another text"])',
            "```", "", "An OpenAI-compatible `/v1/embeddings` server: `text2token serve --model DIR` "
            "(`--host`, `--port`, `--api-key`); a sentence-transformers copy: `text2token export --model DIR "
            "--output OUT`."]


def _terms(backbone: str | None) -> list[str]:
    from .backbone import NOTICES

    if backbone not in NOTICES:
        return []
    return ["## Terms", "", f"This model modifies `{backbone}` (its weights were trained by text2token). "
            f"{NOTICES[backbone][0]}; a copy is in this directory ({Path(NOTICES[backbone][1][1]).name}) with "
            "`NOTICE`. Its use restrictions (section 3.2 and the Prohibited Use Policy) apply to this model and "
            "must be passed on with it.", ""]


def write_notice(model_dir: Path, backbone: str | None) -> None:
    """The NOTICE file and the copy of the terms that a backbone's licence asks for (none for most)."""
    from .backbone import NOTICES

    if backbone not in NOTICES:
        return
    text, (package, name) = NOTICES[backbone]
    atomic_write(model_dir / "NOTICE", lambda f: f.write((text + "\n").encode("utf-8")))
    spec = importlib.util.find_spec(package)
    terms = Path(list(spec.submodule_search_locations)[0]) / name if spec and spec.submodule_search_locations else None
    if terms is not None and terms.is_file():
        shutil.copyfile(terms, model_dir / terms.name)
    else:
        log.warning("model card: %s's terms (%s from %s) are not on this machine; pass them on with the model",
                    backbone, name, package)


def render_card(facts: dict, kind: str = "text2token") -> str:
    """The card's Markdown (with Hugging Face front matter)."""
    licence = facts["licence"]
    front = ["---", *([f"license: {licence.lower()}"] if licence != UNKNOWN_LICENCE else []),
             f"library_name: {kind}", "tags: [text2token, sentence-embeddings, feature-extraction]", "---"]
    title = "sentence-transformers export of a " if kind == "sentence-transformers" else "A "
    lines = [*front, "", f"# {title}Text2Token text embedder", "",
             "Trained without labels (Text2Token): the decoder learns to predict a text's key tokens from its "
             "embedding.", "", f"- backbone: `{facts['backbone'] or 'unknown'}`",
             f"- licence of the backbone: {licence}", "", *_terms(facts["backbone"]), *_recipe(facts), "",
             *_data_and_scores(facts), "",
             *_usage(kind), ""]
    return "\n".join(lines)


def write_card(model_dir: str | Path, meta: dict | None = None, run_dir: Path | None = None,
               kind: str = "text2token") -> Path:
    """Writes (atomically) ``model_dir/README.md``; ``meta`` defaults to the directory's text2token.json."""
    model_dir = Path(model_dir)
    if meta is None:
        meta = _read(model_dir / "text2token.json", json.loads) or {}
    text = render_card(card_facts(meta, run_dir), kind)
    atomic_write(model_dir / CARD_FILE, lambda f: f.write(text.encode("utf-8")))
    write_notice(model_dir, meta.get("backbone"))
    return model_dir / CARD_FILE
