"""A tiny bank training run in its own process, for tests/test_bank.py:

  python bank_driver.py BANK_DIR STEPS EVERY [DIE_AFTER]

trains steps [committed step, STEPS) with a checkpoint every EVERY steps and at the end; with
DIE_AFTER, SIGKILLs itself right after step DIE_AFTER is computed and its rows handed to the
background writer (between checkpoints), with nothing flushed.
"""
import os
import signal
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bank_tiny  # noqa: E402


def main() -> None:
  directory, steps, every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
  die_after = int(sys.argv[4]) if len(sys.argv) > 4 else None
  trainer = bank_tiny.bank_trainer(directory)
  start = trainer.bank.step
  if die_after is not None:
    bank_tiny.train(trainer, start, die_after + 1, every)
    os.kill(os.getpid(), signal.SIGKILL)
  bank_tiny.train(trainer, start, steps, every)
  trainer.checkpoint()
  trainer.bank.close()
  print("done at", trainer.bank.step)


if __name__ == "__main__":
  main()
