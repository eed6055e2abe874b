#!/usr/bin/env bash
# Download Joey NMT 2.3.0 and the packages it imports that the GPU machine's image lacks, as
# wheels for its Python 3.12, so benchmarks/one_gpu.sh can race Joey there with no network.
#
#   benchmarks/peers/joeynmt_wheels.sh [DIR]      (default .whl, which git must ignore)
#
# Everything else Joey imports (torch with CUDA, numpy, matplotlib, sacrebleu, PyYAML, tqdm,
# tensorboard, zipp, narwhals for plotly) is in that image. sentencepiece is pinned to 0.2.1
# because Joey's tokenizer calls SetVocabulary, which 0.2.2 and later no longer have;
# importlib-metadata 10 needs lazy-importer.
set -eu -o pipefail
dir=${1:-.whl}
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$dir" \
    joeynmt==2.3.0 sentencepiece==0.2.1 subword-nmt==0.3.8 mock==5.2.0 importlib-metadata==10.2.0 \
    lazy-importer==0.1.0 plotly==7.1.0 sacremoses==0.2.0
echo "wheels for Joey NMT in $dir: $(ls "$dir" | wc -l) files, $(du -sh "$dir" | cut -f1)"
