#!/usr/bin/env bash
# The GPU figures of the scale work, in one go for a lent device (about 7-10 minutes on an H100,
# compilation included): multi-user LoRA training at 65,536 tokens per step (--remat) and its
# MFU at 32,768 (cuDNN's fused attention and perjax's own), stacked against
# one-user-after-another training (256 users x 16 examples), and decoding 256 rows with 256
# users' adapters against none. SmolLM2-135M's shapes with random weights (`--random-weights`:
# the weights cannot travel to the device machine), so only the throughput counts. One JSON
# line per command, also written to $OUT/gpu_checks.jsonl when $OUT is set.
#
# Then the research shapes (random weights from `perjax models list`'s known shapes): multi-user
# LoRA MFU at llama-3.2-1b and qwen2.5-1.5b (bf16, cuDNN attention), stacked against
# one-user-after-another at 256 users, decoding with 256 adapters against none, and one
# llama-3.1-8b training step beside `perjax plan`'s figure for it. The goals: >= 40% MFU at the
# 1B shapes, >= 10x users/s, >= 80% of plain decoding.
#
#   bash experiments/bench/gpu_checks.sh              # on the GPU machine, from the repository root
#   TINY=1 bash experiments/bench/gpu_checks.sh       # the same commands at toy sizes (a CPU dry run)
#   PYTHON=.venv/bin/python ...                # the Python that has perjax (default python3)
cd "$(dirname "$0")/../.." || exit 1
export PYTHONPATH=.
PEAK=${PEAK_TFLOPS:-989}  # dense bfloat16 peak of H100 / H200
if [ -n "$TINY" ]; then
  M="--model tiny-llama"; TRAIN="--users 2 --steps 2 --batch 2 --seq 16"
  TRAIN_HALF="--users 2 --steps 2 --batch 1 --seq 16"
  USERS="--users 4 --examples 2 --users-per-step 2 --seq 16"
  GEN="--batch 4 --prompt-len 8 --new-tokens 4"; ADAPTERS=4; CHUNK=8
  ATTENTION=xla  # the CPU stand-in for cudnn (the same jax.nn.dot_product_attention call)
  BIG_MODELS="tiny-llama"; BIG_TRAIN="--users 2 --steps 2 --batch 2 --seq 16"
  BIG_USERS="--users 4 --examples 2 --users-per-step 2 --seq 16"
  BIG_GEN="--batch 4 --prompt-len 8 --new-tokens 4"; BIG_ADAPTERS=4
  EIGHT_B="tiny-llama"; EIGHT_B_TRAIN="--users 2 --steps 2 --batch 1 --seq 16"
  PLAN="--model smollm2-135m-instruct --users 4 --batch 2 --seq 64 --mesh fsdp=1"
else
  M="--model smollm2-135m-instruct --random-weights"; TRAIN="--users 16 --steps 5 --batch 16 --seq 256"
  TRAIN_HALF="--users 16 --steps 5 --batch 8 --seq 256"
  USERS="--users 256 --examples 16 --users-per-step 16 --seq 128"
  GEN="--batch 256 --prompt-len 128 --new-tokens 64"; ADAPTERS=256; CHUNK=8192
  ATTENTION=cudnn
  BIG_MODELS="llama-3.2-1b qwen2.5-1.5b"; BIG_TRAIN="--users 16 --steps 5 --batch 8 --seq 512"
  BIG_USERS="--users 256 --examples 8 --users-per-step 16 --seq 256"
  BIG_GEN="--batch 256 --prompt-len 128 --new-tokens 64"; BIG_ADAPTERS=256
  EIGHT_B="llama-3.1-8b"; EIGHT_B_TRAIN="--users 8 --steps 3 --batch 2 --seq 1024"
  PLAN="--model llama-3.1-8b --users 8 --batch 2 --seq 1024 --mesh fsdp=1"
fi
# tiny-llama is built, not a known shape: it takes no --random-weights
shape() { [ "$1" = tiny-llama ] && echo "--model tiny-llama" || echo "--model $1 --random-weights"; }
log=${OUT:-/tmp}/gpu_checks.jsonl
: > "$log"
run() {  # one JSON line, or the command and its last error line when it fails (e.g. memory)
  echo "## $*" >&2
  out=$(timeout "${LIMIT:-300}" "${PYTHON:-python3}" -m perjax "$@" --json 2>/tmp/gpu_checks.err | tail -1)
  [ -n "$out" ] || out="{\"failed\": \"$*\", \"error\": \"$(tail -1 /tmp/gpu_checks.err | tr -d '"\\')\"}"
  echo "$out" | tee -a "$log"
}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU" >&2
# 65,536 tokens a step with the layers recomputed in the backward pass (XLA's CPU memory
# analysis of this step: 9.2 GB of scratch; without --remat 82 GB, more than an H100 holds);
# then MFU at 32,768 tokens without recomputation, cuDNN's fused attention against perjax's own
train() { run bench train $M "$@" --rank 8 --dtype bfloat16 --unroll-layers --loss-chunk $CHUNK \
  --peak-tflops "$PEAK"; }
train $TRAIN --attention "$ATTENTION" --remat
train $TRAIN_HALF --attention "$ATTENTION"
train $TRAIN_HALF --attention default
run bench users $M $USERS --rank 8 --dtype bfloat16 --loss-chunk $CHUNK --attention "$ATTENTION"
run bench generate $M $GEN --adapters "$ADAPTERS" --rank 8
run bench generate $M $GEN

# The research shapes: LoRA MFU with cuDNN attention, stacked users, decoding with adapters
for big in $BIG_MODELS; do
  B=$(shape "$big")
  run bench train $B $BIG_TRAIN --rank 8 --dtype bfloat16 --loss-chunk $CHUNK \
    --attention "$ATTENTION" --remat --peak-tflops "$PEAK"
  run bench users $B $BIG_USERS --rank 8 --dtype bfloat16 --loss-chunk $CHUNK \
    --attention "$ATTENTION"
  run bench generate $B $BIG_GEN --adapters "$BIG_ADAPTERS" --rank 8
  run bench generate $B $BIG_GEN
done
# 8B: one device's training step, beside the plan's per-device bytes for the same step
run bench train $(shape "$EIGHT_B") $EIGHT_B_TRAIN --rank 8 --dtype bfloat16 --loss-chunk $CHUNK \
  --attention "$ATTENTION" --remat --peak-tflops "$PEAK"
run plan $PLAN --method lora --dtype bfloat16
