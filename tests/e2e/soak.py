"""`make soak`: the long form of the faults-under-load run (tests/e2e/harness/soak.py), by hand.

    .venv/bin/python tests/e2e/soak.py --seconds 300 [--rate 150] [--seed N] [--workdir DIR]

Prints each phase as it ends, then the report (tables by request kind and by fault phase, and the
violations); exits 1 when any rule was broken. The Envoy log and soak-summary.json stay in the
work directory.
"""
import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..", "..")))
sys.path.insert(0, HERE)

from harness import gateway as gw  # noqa: E402
from harness.soak import run_soak  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 300)),
                    help="seconds of load (more than 60: the long form; default $SOAK_SECONDS or 300)")
    ap.add_argument("--rate", type=float, default=150.0, help="requests per second (default 150)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: a new one, printed)")
    ap.add_argument("--workdir", default=None, help="where Envoy's files and log go (default: a new temp dir)")
    args = ap.parse_args()
    problem = gw.check_artifacts()
    if problem:
        sys.exit(problem)
    workdir = args.workdir or tempfile.mkdtemp(prefix="apirule-soak-")
    print(f"soak: {args.seconds:.0f} s at {args.rate:.0f}/s, work directory {workdir}", flush=True)
    soak = run_soak(workdir=workdir, seconds=args.seconds, rate=args.rate, seed=args.seed,
                    log=lambda m: print(m, flush=True))
    print(soak.report())
    sys.exit(1 if soak.violations else 0)


if __name__ == "__main__":
    main()
