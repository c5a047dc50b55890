#!/usr/bin/env python3
"""One line of runs.tsv from the output of `/usr/bin/time -v` (stdlib only).

usage: timev.py TIME_FILE KIND NAME SIZE FORMAT REP RC
prints: kind name size format rep wall_s user_s sys_s maxrss_kb rc (tab-separated)
"""
import sys


def parse(text):
    """wall, user and system seconds and the peak RSS in KiB of a `time -v` report."""
    wall = user = sys_ = 0.0
    rss = 0
    for line in text.splitlines():
        line = line.strip()
        key, _, value = line.rpartition(": ")
        if key.startswith("Elapsed (wall clock) time"):
            parts = [float(p) for p in value.split(":")]
            wall = 0.0
            for p in parts:
                wall = wall * 60 + p
        elif key == "User time (seconds)":
            user = float(value)
        elif key == "System time (seconds)":
            sys_ = float(value)
        elif key == "Maximum resident set size (kbytes)":
            rss = int(value)
    return wall, user, sys_, rss


def main(argv):
    path, kind, name, size, fmt, rep, rc = argv[1:8]
    try:
        text = open(path).read()
    except OSError:
        text = ""
    wall, user, sys_, rss = parse(text)
    print("\t".join([kind, name, size, fmt, rep, "%.2f" % wall, "%.2f" % user,
                     "%.2f" % sys_, str(rss), rc]))


if __name__ == "__main__":
    main(sys.argv)
