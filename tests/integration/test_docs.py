"""The documentation stays true to the settings table: every flag that
`keygate --help` prints is documented in docs/configuration.md and in the man
page, and README shows the two set-up commands."""
import os
import re

from harness import ROOT, check, run_cli


def help_flags():
    r = run_cli("--help")
    check(r.returncode == 0, "--help exited %d" % r.returncode)
    flags = re.findall(r"^  (--[a-z0-9-]+)", r.stdout, re.M)
    check(len(flags) >= 20, "--help lists only %d flags" % len(flags))
    return flags


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def test_every_flag_is_in_configuration_md():
    doc = read("docs/configuration.md")
    missing = [f for f in help_flags() if "`" + f not in doc]
    check(not missing, "docs/configuration.md lacks %s (run tools/gen-config-doc.py)" % ", ".join(missing))


def test_every_flag_is_in_the_man_page():
    man = read("man/keygate.1").replace("\\-", "-")
    missing = [f for f in help_flags() if not re.search(re.escape(f) + r"(?![a-z-])", man)]
    check(not missing, "man/keygate.1 lacks %s" % ", ".join(missing))


def test_readme_shows_the_two_setup_commands():
    readme = read("README.md")
    check("make run" in readme and "make test" in readme, "README must show `make run` and `make test`")
