#!/bin/bash
# Wheels the offline GPU machine lacks for bench/gpu_check.sh (LF 0.9.5 inference path + the serve engine), into .whl/
# (ignored). Only what `llamafactory_ext.serve.engine` and bench/webapp_ttft.py import at run time (traced, not
# guessed); the machine already has torch/transformers/peft/accelerate/tokenizers/numpy/pandas/pyarrow/pyyaml/jinja2.
#     bash bench/gpu_wheels.sh        → .whl/*.whl (~3 MB); install there with bench/gpu_check.sh
set -eu
cd "$(dirname "$0")/.."
mkdir -p .whl
P="python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312
   --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64
   --platform manylinux2014_x86_64 -d .whl"
# why these pins: the set that ran LF 0.9.5 training on the same machine (/work/shared/gpu/README.md);
# fsspec ≤2025.3.0 is datasets 4.0.0's own upper bound.
$P llamafactory==0.9.5 datasets==4.0.0 dill==0.3.8 multiprocess==0.70.16 trl==0.24.0 omegaconf==2.4.0 \
   fsspec==2025.3.0
ls -la .whl
du -ch .whl/*.whl | tail -1
