"""Copies result files into README.md and docs/*.md between their include markers, so quoted numbers are never
typed by hand. Paths in the markers are relative to the repository root, in every file.

    <!-- include: results/default/scores.md -->
    ...replaced by the file's content...
    <!-- end include -->

    python scripts/update_readme.py      # exits non-zero naming the result files that are missing
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- include: (\S+) -->\n)(.*?)(<!-- end include -->)", re.S)


def documents(root: Path = ROOT) -> list[Path]:
    """The files whose include blocks are filled: README.md and every docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def update_file(doc: Path, root: Path = ROOT) -> list[str]:
    """Fills the include blocks of one file; returns the block paths that name no file (their blocks are kept)."""
    text = doc.read_text(encoding="utf-8")
    missing: list[str] = []

    def fill(m: re.Match) -> str:
        source = root / m.group(2)
        if not source.is_file():
            missing.append(m.group(2))
            return m.group(0)
        return m.group(1) + source.read_text(encoding="utf-8").rstrip() + "\n" + m.group(4)

    new = BLOCK.sub(fill, text)
    if new != text:
        doc.write_text(new, encoding="utf-8")
    return missing


def update(docs: list[Path] | None = None, root: Path = ROOT) -> list[str]:
    """Fills every document's blocks; returns the missing result files as 'DOC: PATH'."""
    missing: list[str] = []
    for doc in docs if docs is not None else documents(root):
        missing += [f"{doc.relative_to(root)}: {path}" for path in update_file(doc, root)]
    return missing


if __name__ == "__main__":
    gone = update()
    if gone:
        sys.exit(f"missing result files: {', '.join(gone)}")
