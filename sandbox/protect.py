"""Kernel protection layers, installed through ctypes by trusted code.

Everything here is called either in the sandbox server at start-up (namespaces) or in a
freshly forked job child *before* candidate code exists (rlimits, Landlock, capability
drop, seccomp). Each installer raises ``LayerUnavailable`` with a reason when the kernel
or architecture does not offer the layer; callers record that and carry on.
"""
from __future__ import annotations

import ctypes
import os
import platform
import struct
import sys

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.unshare.argtypes = [ctypes.c_int]


class LayerUnavailable(Exception):
    pass


def _err(what: str) -> LayerUnavailable:
    e = ctypes.get_errno()
    return LayerUnavailable(f"{what}: {os.strerror(e)} (errno {e})")


PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWIPC = 0x08000000
CLONE_THREAD = 0x00010000


def prctl(option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> None:
    if _libc.prctl(option, a2, a3, a4, a5) != 0:
        raise _err(f"prctl({option})")


# --------------------------------------------------------------------------- namespaces
def unshare_namespaces() -> list[str]:
    """Called once in the server: a private, empty network namespace (and IPC namespace).

    As root this is a plain unshare; as a plain user it needs a user namespace first, in
    which our own uid/gid are mapped to themselves so file ownership stays as it was.
    Returns the names of the namespaces obtained; raises LayerUnavailable otherwise.
    """
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        if _libc.unshare(CLONE_NEWNET | CLONE_NEWIPC) != 0:
            raise _err("unshare(net, ipc)")
        return ["net", "ipc"]
    if _libc.unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWIPC) != 0:
        raise _err("unshare(user, net, ipc)")
    try:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1\n")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1\n")
    except OSError:
        pass  # the namespaces hold anyway; ids just show as the overflow id inside
    return ["user", "net", "ipc"]


# --------------------------------------------------------------------------- capabilities
def drop_capabilities() -> None:
    """Empty the bounding set and the effective/permitted/inheritable sets."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
    except OSError:
        last = 40
    for cap in range(last + 1):
        _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # EPERM without CAP_SETPCAP: fine
    # capset(header{version 3, pid 0}, data[2] zeroed)
    header = struct.pack("<Ii", 0x20080522, 0)
    data = bytes(24)
    hbuf = ctypes.create_string_buffer(header, len(header))
    dbuf = ctypes.create_string_buffer(data, len(data))
    nr = {"x86_64": 126, "aarch64": 91}.get(platform.machine())
    if nr is None:
        raise LayerUnavailable(f"capset number unknown on {platform.machine()}")
    if _libc.syscall(nr, hbuf, dbuf) != 0:
        raise _err("capset")


# --------------------------------------------------------------------------- landlock
_LL_CREATE, _LL_ADD, _LL_RESTRICT = 444, 445, 446
_LL_FS_BITS_BY_ABI = {1: 13, 2: 14, 3: 15, 4: 15, 5: 16}  # number of fs access bits


def landlock_abi() -> int:
    r = _libc.syscall(_LL_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if r < 0:
        raise _err("landlock")
    return int(r)


def landlock_restrict(read_paths: list[str], write_paths: list[str]) -> int:
    """Allow reading (and exec-mapping) beneath read_paths, everything beneath write_paths,
    nothing else on the filesystem. On ABI>=4 also forbid TCP bind/connect, on ABI>=6 also
    signals to and abstract unix sockets of processes outside the domain.
    Requires no_new_privs (set here). Returns the ABI used."""
    abi = landlock_abi()
    nbits = _LL_FS_BITS_BY_ABI.get(abi, 16)
    handled_fs = (1 << nbits) - 1
    handled_net = 0b11 if abi >= 4 else 0
    scoped = 0b11 if abi >= 6 else 0
    if abi >= 6:
        attr = struct.pack("<QQQ", handled_fs, handled_net, scoped)
    elif abi >= 4:
        attr = struct.pack("<QQ", handled_fs, handled_net)
    else:
        attr = struct.pack("<Q", handled_fs)
    abuf = ctypes.create_string_buffer(attr, len(attr))
    fd = _libc.syscall(_LL_CREATE, abuf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if fd < 0:
        raise _err("landlock_create_ruleset")
    try:
        file_bits = 0b111  # execute, write_file, read_file
        if abi >= 3:
            file_bits |= 1 << 14  # truncate
        if abi >= 5:
            file_bits |= 1 << 15  # ioctl_dev
        read_bits = 0b1101  # execute, read_file, read_dir
        for paths, bits in ((read_paths, read_bits), (write_paths, handled_fs)):
            for p in paths:
                try:
                    pfd = os.open(p, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    allowed = bits
                    if not os.path.isdir(p):
                        allowed = bits & file_bits
                    rule = struct.pack("<Qi", allowed, pfd)
                    rbuf = ctypes.create_string_buffer(rule, len(rule))
                    if _libc.syscall(_LL_ADD, fd, 1, rbuf, 0) != 0:
                        raise _err(f"landlock_add_rule({p})")
                finally:
                    os.close(pfd)
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        if _libc.syscall(_LL_RESTRICT, fd, 0) != 0:
            raise _err("landlock_restrict_self")
    finally:
        os.close(fd)
    return abi


# --------------------------------------------------------------------------- seccomp
AUDIT_ARCH_X86_64 = 0xC000003E
_SECCOMP_ALLOW = 0x7FFF0000
_SECCOMP_KILL_PROCESS = 0x80000000
_SECCOMP_ERRNO = 0x00050000
EPERM, ENOSYS = 1, 38

# x86_64 syscall numbers refused with EPERM.
_X86_64_DENY = {
    "fork": 57, "vfork": 58, "execve": 59, "execveat": 322,
    "socket": 41, "connect": 42, "accept": 43, "bind": 49, "listen": 50, "accept4": 288,
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
    "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
    "unshare": 272, "setns": 308, "setrlimit": 160,
    "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
    "delete_module": 176, "reboot": 169, "swapon": 167, "swapoff": 168,
    "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
    "keyctl": 250, "add_key": 248, "request_key": 249,
    "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297,
    "pidfd_open": 434, "pidfd_send_signal": 424, "pidfd_getfd": 438,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "acct": 163, "settimeofday": 164, "clock_settime": 227, "adjtimex": 159,
    "iopl": 172, "ioperm": 173, "personality": 135, "quotactl": 179,
    "mknod": 133, "mknodat": 259, "name_to_handle_at": 303, "open_by_handle_at": 304,
    "syslog": 103, "vhangup": 153, "fanotify_init": 300, "ioprio_set": 251,
    "setpriority": 141, "sethostname": 170, "setdomainname": 171,
    "move_mount": 429, "open_tree": 428, "fsopen": 430, "fsmount": 432, "fsconfig": 431,
    "fspick": 433, "mount_setattr": 442,
}
_X86_64_CLONE, _X86_64_CLONE3 = 56, 435
_X86_64_KILL = (62, 200, 234)  # kill, tkill, tgkill: first argument must be our own pid
_X86_64_PRLIMIT = 302


def _stmt(code: int, k: int) -> bytes:
    return struct.pack("<HBBI", code, 0, 0, k)


def _jump(code: int, k: int, jt: int, jf: int) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06


def seccomp_filter(own_pid: int) -> int:
    """Install a kernel syscall filter. Returns the number of denied syscall rules.

    Refused with EPERM: creating processes (fork/vfork/clone without CLONE_THREAD),
    exec, sockets, ptrace and cross-process memory, mounts and namespaces, raising
    rlimits (setrlimit, prlimit64 with a new limit), signals to any pid other than our
    own, kernel modules, bpf, perf, keyrings, io_uring and assorted admin calls.
    clone3 gets ENOSYS so libc falls back to clone, whose flags we can inspect.
    Any other architecture word (e.g. x32 or i386 entry) kills the process.
    """
    if platform.machine() != "x86_64" or sys.maxsize <= 2**32:
        raise LayerUnavailable(f"no syscall table for {platform.machine()}")
    deny = sorted(set(_X86_64_DENY.values()))
    prog: list[bytes] = []
    ret_allow, ret_eperm = _stmt(_RET_K, _SECCOMP_ALLOW), _stmt(_RET_K, _SECCOMP_ERRNO | EPERM)
    # labels are resolved by building blocks back to front; simpler: linear program with
    # fixed relative jumps to a common tail [allow, eperm, enosys, kill].
    body: list[tuple] = []  # ("raw", bytes) or ("j", code, k, target_true, target_false)
    body.append(("raw", _stmt(_LD_W_ABS, 4)))  # arch
    body.append(("j", _JEQ_K, AUDIT_ARCH_X86_64, None, "kill"))
    body.append(("raw", _stmt(_LD_W_ABS, 0)))  # nr
    body.append(("j", _JGE_K, 0x40000000, "kill", None))  # x32 ABI
    for nr in deny:
        body.append(("j", _JEQ_K, nr, "eperm", None))
    body.append(("j", _JEQ_K, _X86_64_CLONE3, "enosys", None))
    body.append(("j", _JEQ_K, _X86_64_CLONE, "clone", None))
    for nr in _X86_64_KILL:
        body.append(("j", _JEQ_K, nr, "kill_check", None))
    body.append(("j", _JEQ_K, _X86_64_PRLIMIT, "prlimit", None))
    body.append(("goto", "allow"))
    # clone: allowed only for threads (flags in args[0])
    body.append(("label", "clone"))
    body.append(("raw", _stmt(_LD_W_ABS, 16)))
    body.append(("j", _JSET_K, CLONE_THREAD, "allow", "eperm"))
    # kill/tkill/tgkill: args[0] (lower 32 bits, pid_t is int) must be our pid or 0 (own group)
    body.append(("label", "kill_check"))
    body.append(("raw", _stmt(_LD_W_ABS, 16)))
    body.append(("j", _JEQ_K, own_pid & 0xFFFFFFFF, "allow", None))
    body.append(("j", _JEQ_K, 0, "allow", "eperm"))
    # prlimit64(pid, res, new, old): new (args[2]) must be NULL
    body.append(("label", "prlimit"))
    body.append(("raw", _stmt(_LD_W_ABS, 16 + 2 * 8)))
    body.append(("j", _JEQ_K, 0, None, "eperm"))
    body.append(("raw", _stmt(_LD_W_ABS, 16 + 2 * 8 + 4)))
    body.append(("j", _JEQ_K, 0, "allow", "eperm"))
    body.append(("label", "allow"))
    body.append(("raw", ret_allow))
    body.append(("label", "eperm"))
    body.append(("raw", ret_eperm))
    body.append(("label", "enosys"))
    body.append(("raw", _stmt(_RET_K, _SECCOMP_ERRNO | ENOSYS)))
    body.append(("label", "kill"))
    body.append(("raw", _stmt(_RET_K, _SECCOMP_KILL_PROCESS)))
    # assign instruction indices
    labels: dict[str, int] = {}
    idx = 0
    for item in body:
        if item[0] == "label":
            labels[item[1]] = idx
        else:
            idx += 1
    idx = 0
    for item in body:
        kind = item[0]
        if kind == "label":
            continue
        if kind == "raw":
            prog.append(item[1])
        elif kind == "goto":
            prog.append(_stmt(0x05, labels[item[1]] - idx - 1))  # BPF_JMP|BPF_JA
        else:
            _, code, k, tt, tf = item
            jt = 0 if tt is None else labels[tt] - idx - 1
            jf = 0 if tf is None else labels[tf] - idx - 1
            if not (0 <= jt < 256 and 0 <= jf < 256):
                raise LayerUnavailable("seccomp program too long for short jumps")
            prog.append(_jump(code, k, jt, jf))
        idx += 1
    code = b"".join(prog)
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("<HxxxxxxQ", len(prog), ctypes.addressof(buf))
    fbuf = ctypes.create_string_buffer(fprog, len(fprog))
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fbuf), 0, 0) != 0:
        raise _err("prctl(PR_SET_SECCOMP)")
    return len(deny) + 6
