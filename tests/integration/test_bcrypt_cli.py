"""`keygate bcrypt`, as `bee bcrypt` was."""
import subprocess

from harness import BIN, check, run_cli


def test_hash_then_check():
    r = run_cli("bcrypt", "--cost", "4", "s3cret")
    h = r.stdout.strip()
    check(r.returncode == 0 and h.startswith("$2b$04$") and len(h) == 60, "hash: %d %r" % (r.returncode, r.stdout))
    r = run_cli("bcrypt", "--check", "s3cret", h)
    check(r.returncode == 0 and r.stdout.strip() == "OK: password hash matches provided plain text", "check: %r" % r.stdout)
    r = run_cli("bcrypt", "--check", "wrong", h)
    check(r.returncode == 1 and "password hash does not match provided plain text" in r.stderr, "mismatch: %r" % r.stderr)


def test_default_cost_is_10():
    r = run_cli("bcrypt", "x")
    check(r.returncode == 0 and r.stdout.startswith("$2b$10$"), "default cost: %r" % r.stdout)


def test_hashes_from_elsewhere_verify():
    for h in ("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
              "$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"):
        r = run_cli("bcrypt", "--check", "U*U", h)
        check(r.returncode == 0, "%s: %d %r" % (h, r.returncode, r.stderr))


def test_password_from_stdin_stays_out_of_argv():
    p = subprocess.run([BIN, "bcrypt", "--cost", "4", "-"], input="from stdin\n", capture_output=True, text=True, timeout=20)
    check(p.returncode == 0, "stdin hash: %r" % p.stderr)
    p2 = subprocess.run([BIN, "bcrypt", "--check", "-", p.stdout.strip()], input="from stdin\n", capture_output=True,
                        text=True, timeout=20)
    check(p2.returncode == 0, "the trailing newline is not part of the password: %r" % p2.stderr)


def test_usage_errors():
    for args in (("bcrypt",), ("bcrypt", "--cost", "3", "x"), ("bcrypt", "--cost", "32", "x"), ("bcrypt", "--check", "x")):
        r = run_cli(*args)
        check(r.returncode == 2, "%s: exit %d" % (" ".join(args), r.returncode))
    r = run_cli("bcrypt", "--check", "x", "not-a-hash")
    check(r.returncode == 1 and "not a bcrypt hash" in r.stderr, "malformed hash: %d %r" % (r.returncode, r.stderr))
