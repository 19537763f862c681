#!/usr/bin/env python3
"""Runs keygate's black-box integration tests.

    KG_TEST_BIN=build/keygate python3 tests/integration/run.py [-k SUBSTRING] [-x SUBSTRING]

Discovers tests/integration/test_*.py and runs every function named test_*
(modules by name, functions in file order). Prints one line per test,
"ok NAME", "not ok NAME: what differed" or "skip NAME: why it could not be
checked" (NAME = module.function; a test skips by calling harness.skip), plus
"# ..." comment lines (keygate's last stderr lines after a failure). Exits 1
if any test failed. -k runs only tests whose NAME contains SUBSTRING, -x
skips those that do (both repeatable; e.g. -x test_large for a quick run).
KG_TEST_ASAN=1: the binary has AddressSanitizer; the memory-ceiling tests skip.
"""
import argparse
import glob
import importlib
import inspect
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402

DEFAULT_TIMEOUT = 60


class TestTimeout(Exception):
    pass


def on_alarm(signum, frame):
    raise TestTimeout("test did not finish within its time limit")


def one_line(text):
    return " ".join(str(text).split())


def discover():
    tests = []
    for path in sorted(glob.glob(os.path.join(HERE, "test_*.py"))):
        mod = importlib.import_module(os.path.basename(path)[:-3])
        fns = [f for n, f in vars(mod).items()
               if n.startswith("test_") and inspect.isfunction(f) and f.__module__ == mod.__name__]
        fns.sort(key=lambda f: f.__code__.co_firstlineno)
        tests += [("%s.%s" % (mod.__name__, f.__name__), f) for f in fns]
    return tests


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", action="append", default=[], help="run tests whose name contains this")
    ap.add_argument("-x", action="append", default=[], help="skip tests whose name contains this")
    args = ap.parse_args()

    if not (os.path.isfile(harness.BIN) and os.access(harness.BIN, os.X_OK)):
        print("not ok integration: KG_TEST_BIN %s missing (build it with make)" % harness.BIN, flush=True)
        return 1

    try:
        tests = discover()
    except Exception as e:
        print("not ok integration: cannot load tests: %s" % one_line(e), flush=True)
        traceback.print_exc()
        return 1
    tests = [(n, f) for n, f in tests
             if (not args.k or any(k in n for k in args.k)) and not any(x in n for x in args.x)]
    if not tests:
        print("not ok integration: no test matches -k %s" % " ".join(args.k), flush=True)
        return 1

    signal.signal(signal.SIGALRM, on_alarm)
    passed = failed = skipped = 0
    t_all = time.monotonic()
    for name, fn in tests:
        harness.begin_test()
        t0 = time.monotonic()
        limit = getattr(fn, "timeout", DEFAULT_TIMEOUT) * (3 if harness.ASAN else 1)
        error = skip = None
        signal.alarm(int(limit))
        try:
            try:
                fn()
            finally:
                signal.alarm(0)
        except harness.Skip as e:
            skip = one_line(e) or "no reason given"
        except AssertionError as e:
            error = one_line(e) or "assertion failed"
            where = traceback.extract_tb(e.__traceback__)
            where = [fr for fr in where if os.path.basename(fr.filename).startswith("test_")]
            if where:
                error += " (%s:%d)" % (os.path.basename(where[-1].filename), where[-1].lineno)
        except BaseException as e:  # includes TestTimeout and KeyboardInterrupt
            if isinstance(e, KeyboardInterrupt):
                harness.reap_all()
                raise
            tb = traceback.extract_tb(e.__traceback__)
            mine = [fr for fr in tb if os.path.basename(fr.filename).startswith("test_")]
            loc = ["%s:%d" % (os.path.basename(fr.filename), fr.lineno) for fr in mine[-1:]]
            if tb and tb[-1] not in mine and os.path.basename(tb[-1].filename) == "harness.py":
                loc.append("harness.py:%d" % tb[-1].lineno)
            loc = " (%s)" % " via ".join(loc) if loc else ""
            error = "%s: %s%s" % (type(e).__name__, one_line(e), loc)
        finally:
            signal.alarm(0)
            harness.reap_all()
        secs = time.monotonic() - t0
        if skip is not None:
            skipped += 1
            print("skip %s: %s" % (name, skip), flush=True)
        elif error is None:
            passed += 1
            suffix = "".join(" # " + n for n in harness.notes())
            print("ok %s%s" % (name, suffix), flush=True)
        else:
            failed += 1
            print("not ok %s: %s" % (name, error), flush=True)
            for label, lines in harness.stderr_tails(20):
                print("# --- last stderr lines of %s" % label)
                for l in lines:
                    print("#   " + l)
            sys.stdout.flush()
        if secs > 10:
            print("# %s took %.1f s" % (name, secs), flush=True)
    print("# integration: %d passed, %d failed, %d skipped in %.1f s"
          % (passed, failed, skipped, time.monotonic() - t_all), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
