"""Shared helpers for the sandbox tests (no test functions here)."""
from __future__ import annotations

import os
import sys
import textwrap

from sandbox import Job, Limits

HARNESS = "sandbox.selftest_harness"
FAST = Limits(wall_time_s=3.0, cpu_time_s=2.0, memory_mb=1024, output_bytes=65536)


def job(code: str, args=(), entry: str = "f", call: str = "call") -> Job:
    return Job(code=textwrap.dedent(code), entry=entry, harness=HARNESS, call=call,
               payload={"args": list(args)})


def sandbox_pids(marker: str) -> set[int]:
    """Pids of live (non-zombie) processes whose command line holds ``marker`` (a
    Sandbox's private base dir: its server and every job child forked from it)."""
    out = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if marker.encode() not in f.read():
                    continue
            with open(f"/proc/{d}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                out.add(int(d))
        except OSError:
            continue
    return out


def children_of(pid: int) -> list[int]:
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                kids.append(int(d))
        except OSError:
            continue
    return kids
