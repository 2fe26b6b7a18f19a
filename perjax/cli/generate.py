"""`perjax generate --model NAME --prompt TEXT`: print the model's continuation."""
import dataclasses
import sys


def register(subparsers):
  p = subparsers.add_parser("generate", help="generate a continuation of a prompt")
  p.add_argument("--model", default="smollm2-135m-instruct")
  p.add_argument("--prompt", action="append", required=True,
                 help="prompt text; repeat the flag for a batch")
  p.add_argument("--max-new-tokens", type=int, default=64)
  p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
  p.add_argument("--top-k", type=int, default=0)
  p.add_argument("--top-p", type=float, default=1.0)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--system", default=None, help="system prompt (chat models)")
  p.add_argument("--no-chat", action="store_true", help="do not apply the chat template")
  p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  p.set_defaults(func=run)


def run(args):
  from perjax.bounded_inputs import cap_new_tokens, fit_prompts, prompt_limit
  from perjax.experiment.validate import check_model
  from perjax.generation import Generator, SamplingConfig
  from perjax.models import load

  sampling = SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                            top_k=args.top_k, top_p=args.top_p)  # checked before the slow load
  check_model(args.model, "gguf-decoder", "--model")
  print(f"loading {args.model} (the first use fetches and unpacks it)...", file=sys.stderr)
  model, tokenizer = load(args.model, dtype=args.dtype, param_dtype=args.dtype)
  generator = Generator(model, tokenizer)
  prompts = generator.encode_prompts(args.prompt, chat=not args.no_chat, system=args.system)
  context = model.config.max_position - generator.prefix_len
  sampling = dataclasses.replace(sampling, max_new_tokens=cap_new_tokens(
      sampling.max_new_tokens, context, max(len(p) for p in prompts), name="--max-new-tokens"))
  prompts = fit_prompts(prompts, prompt_limit(context, reserve=sampling.max_new_tokens),
                        why="the model's context less the answer")
  for ids in generator.generate_ids(prompts, sampling=sampling, seed=args.seed):
    print(tokenizer.decode(ids, skip_special_tokens=True))
