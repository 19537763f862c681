#!/usr/bin/env python3
"""Writes docs/configuration.md from `keygate --help` (the settings table).

    tools/gen-config-doc.py build/keygate > docs/configuration.md

tests/integration/test_docs.py checks that every flag --help prints is in the
generated page and in the man page, so the three never drift apart."""
import re
import subprocess
import sys

out = subprocess.run([sys.argv[1], "--help"], capture_output=True, text=True, check=True).stdout
blocks = re.findall(r"^  (--\S+)(.*)\n((?:      .*\n)+)", out, re.M)
print("""# Configuration

Every setting has one canonical name (snake_case, dotted for sections). It can
be given three ways, and the first that is present wins:

1. a flag: the name with `-` for `_` and `.` (`--proxy-upstream-timeout 5s`,
   `--proxy-upstream-timeout=5s`; a boolean flag alone means true,
   `--name=false` turns it off; a repeatable flag's first use replaces the
   lower layers and later uses append);
2. an environment variable: `KEYGATE_` and the name upper-cased with `_` for
   `.` (`KEYGATE_PROXY_UPSTREAM_TIMEOUT=5s`; lists are comma-separated);
3. the YAML file given with `--config FILE` (or `KEYGATE_CONFIG`): nested maps
   or dotted keys, hyphenated spellings accepted (`upstream-timeout`), a list
   as a scalar or a sequence.

Unknown keys, flags and `KEYGATE_*` variables are errors. `keygate config
check FILE` prints every error as `file:line: key: problem`. Durations take
`ms`, `s`, `m`, `h`, `d` (a bare number is seconds); sizes take `KiB`, `MiB`,
`GiB` (or `K`, `M`, `G` for powers of ten; a bare number is bytes).

The timeouts (`limits.header_timeout`, `idle_timeout`, `body_timeout`,
`send_timeout`, `proxy.upstream_timeout`, `connect_timeout`) are checked by
one tick per worker every 100 ms: a timeout takes effect at its time or up to
0.1 s after it, never before.

`etc/keygate.yaml` is a commented example with every setting. SIGHUP reloads
the file; `listen`, `workers` and `data_dir` need a restart.

This page is generated from the settings table by `tools/gen-config-doc.py`.

| flag | what | default, range, environment |
|---|---|---|""")
for flag, meta, body in blocks:
    lines = [l.strip() for l in body.strip("\n").split("\n")]
    what = " ".join(l for l in lines if not l.startswith("default:"))
    dflt = " ".join(l for l in lines if l.startswith("default:"))
    cell = lambda s: s.replace("|", "\\|")
    print("| `%s%s` | %s | %s |" % (cell(flag), cell(meta), cell(what), cell(dflt)))
