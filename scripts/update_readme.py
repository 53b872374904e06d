"""Copies result files into README.md between their include markers, so quoted numbers are never typed by hand.

    <!-- include: results/default/scores.md -->
    ...replaced by the file's content...
    <!-- end include -->
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- include: (\S+) -->\n)(.*?)(<!-- end include -->)", re.S)


def update(readme: Path = ROOT / "README.md") -> list[str]:
    text = readme.read_text(encoding="utf-8")
    missing: list[str] = []

    def fill(m: re.Match) -> str:
        source = ROOT / m.group(2)
        if not source.is_file():
            missing.append(m.group(2))
            return m.group(0)
        return m.group(1) + source.read_text(encoding="utf-8").rstrip() + "\n" + m.group(4)

    readme.write_text(BLOCK.sub(fill, text), encoding="utf-8")
    return missing


if __name__ == "__main__":
    gone = update()
    if gone:
        sys.exit(f"missing result files: {', '.join(gone)}")
