"""`perjax` in a subprocess with a fault injected, for tests/test_faults.py.

  python fault_driver.py slow-steps SECONDS -- ARGS   each training step sleeps SECONDS first
  python fault_driver.py die-in-save STEP -- ARGS     SIGKILLs itself while checkpoint STEP is
                                                      written but not yet committed
  python fault_driver.py plain - -- ARGS              no fault

ARGS are `perjax` arguments. Neither fault changes what a run computes, so a run resumed after
it must end exactly as an uninterrupted one.
"""
import os
import signal
import sys
import time
from pathlib import Path


def slow_steps(seconds: float) -> None:
  from perjax.training import loop as train
  real = train.make_train_step

  def make(*args, **kwargs):
    step = real(*args, **kwargs)

    def slow(*a):
      time.sleep(seconds)
      return step(*a)
    return slow
  train.make_train_step = make


def die_in_save(step: int) -> None:
  # Orbax writes a step into a temporary folder and renames it into place to commit it: dying
  # right before that rename is the worst moment of a checkpoint write.
  from orbax.checkpoint._src.path import async_path
  real = async_path.rename

  async def rename(src, dst):
    if Path(str(dst)).name == str(step):
      os.kill(os.getpid(), signal.SIGKILL)
    return await real(src, dst)
  async_path.rename = rename


def main() -> int:
  fault, value, dashes, *args = sys.argv[1:]
  assert dashes == "--"
  if fault == "slow-steps":
    slow_steps(float(value))
  elif fault == "die-in-save":
    die_in_save(int(value))
  from perjax.cli import main as perjax_main
  return perjax_main(args)


if __name__ == "__main__":
  sys.exit(main())
