"""`perjax report RUN_OR_SWEEP_DIR` and `perjax show RUN_DIR [--user U] [--n 5]`."""


def register(subparsers):
  r = subparsers.add_parser(
      "report", help="results.csv, results.md and results.png again from finished runs")
  r.add_argument("folder", help="a sweep folder (or one run's folder)")
  r.set_defaults(func=report)
  s = subparsers.add_parser(
      "show", help="a run's examples: prompt, output, prediction and target side by side")
  s.add_argument("run", help="a finished run's folder")
  s.add_argument("--user", help="only this user's rows")
  s.add_argument("--n", type=int, default=5, help="how many examples (default 5)")
  s.add_argument("--width", type=int, default=None, help="line width (default: the terminal's)")
  s.set_defaults(func=show)


def report(args):
  from perjax.reporting.rereport import rereport
  print(rereport(args.folder).read_text(), end="")
  return 0


def show(args):
  from perjax.reporting.show import show as render
  print(render(args.run, user=args.user, n=args.n, width=args.width))
  return 0
