"""`python -m sandbox`: print which protection layers are active on this machine."""
from __future__ import annotations

import os
import sys

from . import Job, Limits, Sandbox


def main() -> int:
    with Sandbox(Limits(wall_time_s=10, cpu_time_s=10), workers=1) as sb:
        print(f"sandbox layers on this machine (uid {os.geteuid()}, python {sys.version.split()[0]}):")
        for name, text in sb.layers.items():
            print(f"  {name:13s} {text}")
        probe = sb.run(Job(code="import os\ndef f():\n    return os.fork()\n", entry="f",
                           harness="sandbox.selftest_harness", call="call", payload={}))
        print(f"  {'self-check':13s} os.fork() inside a job -> {probe.status}: {probe.error}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
