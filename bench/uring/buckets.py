#!/usr/bin/env python3
"""Reads `perf report --sort sym --stdio -g none` and prints one line
variant|conns|requests|sampled ns|family=percent;... for bench/uring/run.sh:
the proxy's CPU split into the families an I/O interface can change (the
syscall boundary, epoll and readiness polling, io_uring's own machinery,
wakeups and scheduling) and the one it cannot (TCP/IP itself).
    perf report ... | buckets.py VARIANT CONNS REQUESTS"""
import re
import sys

FAMILIES = [
    ('user space', None),
    ('io_uring', r'(__)?io_|io_uring'),
    ('epoll, readiness polls', r'(ep_|do_epoll|__x64_sys_epoll|sock_poll|tcp_poll|__pollwait)'),
    ('syscall entry/exit, fd lookup', r'(entry_SYSCALL|do_syscall_64|syscall_|exit_to_user|__x64_sys_|__sys_|'
     r'fdget|__fget|sockfd_lookup|fput|srso|__x86_return_thunk|__x86_indirect|.*retpoline)'),
    ('scheduler, wakeups, locks', r'(finish_task_switch|__schedule|schedule|try_to_wake_up|ttwu|enqueue_|'
     r'dequeue_|pick_next|update_|__wake_up|autoremove_wake|set_next|psi_|hrtimer|_raw_spin|native_)'),
]
REST = 'TCP/IP, skb, copies (the rest)'


def family(kernel, sym):
    if not kernel:
        return 'user space'
    for name, rx in FAMILIES[1:]:
        if re.match(rx, sym):
            return name
    return REST


def main():
    variant, conns, reqs = sys.argv[1:4]
    total_ns = 0.0
    share = {name: 0.0 for name, _ in FAMILIES}
    share[REST] = 0.0
    for line in sys.stdin:
        m = re.match(r'# Event count \(approx\.\): (\d+)', line)
        if m:
            total_ns = float(m.group(1))  # cpu-clock counts nanoseconds
            continue
        m = re.match(r'\s*([\d.]+)%\s+\[(.)\]\s+(\S+)', line)
        if m:
            share[family(m.group(2) == 'k', m.group(3))] += float(m.group(1))
    cells = ';'.join(f'{k}={v:.1f}' for k, v in share.items())
    print(f'{variant}|{conns}|{reqs}|{total_ns:.0f}|{cells}')


main()
