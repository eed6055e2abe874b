#!/usr/bin/env bash
# Redraws the README's pictures from a trained G2P Transformer:
#   docs/pictures.sh TRANSFORMER_DIR
# (the README's pictures came from runs/cpu-g2p/t192-b4k-140m-averaged: the README's 140-minute CPU run of
# `python benchmarks/g2p.py`, its last five checkpoints averaged).
set -euo pipefail
model=$(realpath "${1:?usage: docs/pictures.sh TRANSFORMER_DIR}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$(dirname "$0")"
attend explain --model "$model" attention --beam 4 --animate --out "$work"
cp "$work/cross_attention_heads.png" transformer-heads.png
cp "$work/decoding.gif" decoding.gif
python - "$work/decoding.gif" decoding-frame.png <<'PY'
import sys
from PIL import Image

gif = Image.open(sys.argv[1])
gif.seek(gif.n_frames - 4)  # a late decoding step: the beams and the attention lines are all on screen
gif.convert("RGB").save(sys.argv[2])
PY
