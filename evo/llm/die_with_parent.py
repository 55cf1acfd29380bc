"""Run a command that the kernel kills the moment its parent dies, however the parent dies.

    python die_with_parent.py PARENT_PID COMMAND [ARGS...]

evo starts the local LLM server through this file (run by path, so that nothing of evo is
imported). It asks Linux for SIGKILL on the parent's death (``PR_SET_PDEATHSIG``; the
setting survives ``exec``), checks that the parent did not die before the request took
effect, then becomes the command. A SIGKILLed evo therefore leaves no server behind, which
no ``finally`` and no signal handler in evo could promise.

On a system without ``prctl`` the command runs unguarded; evo still stops it on every exit
it lives to see.
"""
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main() -> None:
    parent, command = int(sys.argv[1]), sys.argv[2:]
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the guard was in place
        sys.exit(1)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
