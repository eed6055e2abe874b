#!/usr/bin/env bash
# Every benchmark row that wants a GPU, run side by side on one GPU in one sitting.
#
#   benchmarks/one_gpu.sh MULTI30K_DIR CMUDICT_TRAIN OUT MINUTES [speed|train]
#
# "speed" measures benchmarks/speed.py's training rows on the GPU alone (no other job
# running). "train" (the default) trains the rows below side by side, one process and one
# CPU thread each, for MINUTES each, scores them (benchmark.json in each folder under OUT),
# then measures speed.py's rows, decoding included, on the trained Multi30k Transformer with
# the GPU to itself. The rows: every Multi30k and G2P family from its shipped config; the
# Multi30k Transformer with dropout 0.3 (configs/multi30k-en-de-transformer-gpu.yaml); two
# stand-ins for the 2-hour CPU budget, trained for the steps 2 CPU cores reach in 2 hours
# (3.75 s a step for d_model 256, 1.8 s for d_model 128 with 4+4 layers); and a larger G2P
# Transformer. The jobs share the GPU, so each row's steps are what it got while sharing.
# EXTRA_JOBS adds rows, lines of "m30k|g2p NAME FAMILY [--set SECTION.KEY=VALUE ...]", and
# ONLY_EXTRA=1 runs those alone. A line "joey NAME [joeynmt.py options]" races Joey NMT 2.3
# (benchmarks/peers/joeynmt.py, its own recipe; latest weights and alpha 1.0 unless the line's
# options say otherwise, e.g. --checkpoint best --beam-alphas ...) on the Multi30k data for the
# same minutes; its venv sees python3's packages (on the GPU machine, its CUDA torch) and gets
# Joey from the wheels in JOEY_WHEELS (default .whl; benchmarks/peers/joeynmt_wheels.sh
# downloads them). With USE_MPS=1 the jobs run under NVIDIA's multi-process service, so their
# kernels overlap instead of taking turns. Every finished row is printed as JSON at the end.
set -u -o pipefail
if [ $# -lt 4 ]; then
    echo "usage: one_gpu.sh MULTI30K_DIR CMUDICT_TRAIN OUT MINUTES [speed|train]" >&2
    exit 2
fi
data=$1 lexicon=$2 out=$3 minutes=$4 what=${5:-train}
case $what in
    speed|train) ;;
    *) echo "one_gpu.sh: the fifth argument must be speed or train, got '$what'" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
export PYTHONUNBUFFERED=1

if [ "$what" = speed ]; then
    python3 "$here/speed.py" --data "$data" --device cuda --threads 1 --json "$out/speed-train.json"
    exit $?
fi

jobs_file=$(mktemp)
mps=0
if [ "${USE_MPS:-0}" = 1 ]; then
    if command -v nvidia-cuda-mps-control >/dev/null && nvidia-cuda-mps-control -d; then
        mps=1 && echo "MPS daemon started"
    else
        echo "one_gpu.sh: USE_MPS=1 but the MPS daemon did not start; the jobs take turns on the GPU" >&2
    fi
fi
trap 'rm -f "$jobs_file"; [ $mps = 1 ] && echo quit | nvidia-cuda-mps-control' EXIT
[ "${ONLY_EXTRA:-0}" = 1 ] || cat > "$jobs_file" <<EOF
m30k transformer transformer --set train.eval_every=250
m30k rnn-attention rnn-attention --set train.eval_every=250
m30k rnn rnn --set train.eval_every=250
g2p transformer transformer --set train.eval_every=500
g2p rnn-attention rnn-attention --set train.eval_every=500
g2p rnn rnn --set train.eval_every=500
m30k transformer-drop3 transformer --set model.dropout=0.3 --set train.eval_every=250
m30k cpu2h-d256 transformer --set train.max_minutes=0 --set train.max_steps=1850 --set train.eval_every=370
m30k cpu2h-d128x4 transformer --set model.hidden_size=128 --set model.ff_size=512 --set model.encoder_layers=4 --set model.decoder_layers=4 --set train.max_minutes=0 --set train.max_steps=3900 --set train.eval_every=780
g2p transformer-d256 transformer --set model.hidden_size=256 --set model.ff_size=1024 --set model.dropout=0.2 --set train.eval_every=500
EOF
printf '%s\n' "${EXTRA_JOBS:-}" >> "$jobs_file"

joey_venv=$out/joey-venv
joey_gpu=--gpu  # a machine without nvidia-smi runs the same jobs on its CPU, as a smoke test
command -v nvidia-smi >/dev/null || joey_gpu=

pids=()
while read -r kind name family rest; do
    [[ -z "$kind" || $kind == \#* ]] && continue
    read -ra words <<< "$rest"
    overrides=()
    for w in "${words[@]}"; do [ "$w" != --set ] && overrides+=(--set "$w"); done
    case $kind in
        m30k) python3 "$here/multi30k.py" --data "$data" --families "$family" --name "$name" --minutes "$minutes" \
                  --threads 1 --quiet --out "$out/m30k" "${overrides[@]}" > "$out/m30k-$name.log" 2>&1 & ;;
        g2p) python3 "$here/g2p.py" --train-lexicon "$lexicon" --families "$family" --name "$name" \
                 --minutes "$minutes" --threads 1 --quiet --out "$out/g2p" "${overrides[@]}" > "$out/g2p-$name.log" 2>&1 & ;;
        joey) python3 "$here/peers/joeynmt.py" --data "$data" --minutes "$minutes" $joey_gpu --venv "$joey_venv" \
                  --wheels "${JOEY_WHEELS:-.whl}" \
                  --threads 1 --eval-every 100000 --checkpoint latest --json "$out/joey-$name.json" \
                  --workdir "$out/joey-$name" $family $rest > "$out/joey-$name.log" 2>&1 & ;;
        *) echo "one_gpu.sh: job '$kind $name': the kind must be m30k, g2p or joey" >&2; continue ;;
    esac
    pids+=($!)
    echo "started $kind $name ($family $rest)"
done < "$jobs_file"

failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
echo "training jobs done, $failed failed"
if [ $mps = 1 ]; then
    echo quit | nvidia-cuda-mps-control
    mps=0
fi

if [ -f "$out/m30k/transformer/model.safetensors" ]; then
    python3 "$here/speed.py" --data "$data" --device cuda --threads 1 --steps 40 --model "$out/m30k/transformer" \
        --json "$out/speed-decode.json" > "$out/speed-decode.log" 2>&1 || echo "decode speed failed"
fi
for row in "$out"/m30k/*/benchmark.json "$out"/g2p/*/benchmark.json "$out"/joey-*.json; do
    [ -f "$row" ] && echo "$row: $(tr -d '\n' < "$row")"
done
exit "$failed"
