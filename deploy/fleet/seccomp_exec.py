#!/usr/bin/python3
"""Run a command under a seccomp profile in the JSON format that Kubernetes reads for
`seccompProfile: {type: Localhost}` (the OCI runtime-spec LinuxSeccomp fields), the way the
container runtime applies it: no_new_privs set, the filter loaded, then execve.

Usage: seccomp_exec.py [--without NAME[,NAME...]] PROFILE.json -- COMMAND [ARGS...]

--without drops system calls from the profile's allow lists (to show that a profile is what lets
a program run). Names the running architecture does not know are skipped, as runc does.
Supported profiles: defaultAction SCMP_ACT_ERRNO (with defaultErrnoRet) and SCMP_ACT_ALLOW
entries without argument filters, which is what deploy/fleet/seccomp-dotproxy.json uses.
Needs Debian's python3-seccomp.
"""
import argparse
import json
import os
import sys

import seccomp


def build_filter(profile, without=()):
    """Returns a seccomp.SyscallFilter for `profile` (a dict), minus the names in `without`."""
    if profile.get("defaultAction") != "SCMP_ACT_ERRNO":
        raise ValueError("only defaultAction SCMP_ACT_ERRNO is supported")
    filt = seccomp.SyscallFilter(defaction=seccomp.ERRNO(int(profile.get("defaultErrnoRet", 1))))
    for entry in profile.get("syscalls", []):
        if entry.get("action") != "SCMP_ACT_ALLOW" or entry.get("args"):
            raise ValueError(f"unsupported syscalls entry: {entry}")
        for name in entry["names"]:
            if name in without:
                continue
            if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) < 0:
                continue  # not a system call of this architecture
            filt.add_rule(seccomp.ALLOW, name)
    return filt


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--without", default="", help="comma-separated system calls to drop")
    parser.add_argument("profile")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    with open(args.profile, encoding="utf-8") as f:
        profile = json.load(f)
    without = {name for name in args.without.split(",") if name}
    filt = build_filter(profile, without)
    filt.load()  # sets no_new_privs first (libseccomp's default)
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
