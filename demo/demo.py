#!/usr/bin/env python3
"""Helpers for demo/run (Python 3.6+, standard library only; curl is not needed).

  demo.py nodes TESTNET_JSON        one line per node: moniker service_listen proxy_listen client_connect
  demo.py ready TIMEOUT ADDR...     wait until every node's /stats answers (exit 1 after TIMEOUT s)
  demo.py stats [--every S] ADDR... print each node's /stats as one table line (once, or every S s)
  demo.py follow NAME=FILE...       print the lines appended to each FILE, prefixed by NAME
"""

import json
import os
import signal
import sys
import time
import urllib.request

COLUMNS = [
    ("moniker", "node", 8),
    ("state", "state", 12),
    ("last_block_index", "block", 6),
    ("last_consensus_round", "round", 6),
    ("transactions", "txs", 6),
    ("undetermined_events", "undetermined", 12),
]


def fetch_stats(addr, timeout=1.0):
    """The node's /stats as a dict, or None when it does not answer."""
    try:
        with urllib.request.urlopen("http://%s/stats" % addr, timeout=timeout) as resp:
            return json.loads(resp.read().decode("utf-8"))
    except Exception:  # noqa: BLE001 - any failure means "not answering"
        return None


def table_line(cells):
    return "  ".join(str(c).ljust(w) for c, (_, _, w) in zip(cells, COLUMNS)).rstrip()


def stats_lines(addrs):
    lines = []
    for addr in addrs:
        stats = fetch_stats(addr)
        if stats is None:
            lines.append(table_line(["?"] * len(COLUMNS)) + "  (%s not answering)" % addr)
        else:
            lines.append(table_line([stats.get(key, "-") for key, _, _ in COLUMNS]))
    return lines


def cmd_nodes(args):
    with open(args[0]) as f:
        nodes = json.load(f)
    for n in nodes:
        print(n["moniker"], n["service_listen"], n["proxy_listen"], n["client_connect"])


def cmd_ready(args):
    deadline = time.monotonic() + float(args[0])
    pending = list(args[1:])
    while pending:
        pending = [a for a in pending if fetch_stats(a, timeout=0.5) is None]
        if not pending:
            return 0
        if time.monotonic() > deadline:
            print("not answering on /stats: %s" % " ".join(pending), file=sys.stderr)
            return 1
        time.sleep(0.2)
    return 0


def cmd_stats(args):
    every = None
    if args and args[0] == "--every":
        every = float(args[1])
        args = args[2:]
    header = "[stats] " + table_line([title for _, title, _ in COLUMNS])
    if every is None:
        print(header)
        for line in stats_lines(args):
            print("[stats] " + line)
        return 0
    tick = 0
    while True:
        started = time.monotonic()
        lines = stats_lines(args)
        if tick % 20 == 0:
            print(header, flush=True)
        print("\n".join("[stats] " + line for line in lines), flush=True)
        tick += 1
        time.sleep(max(0.0, every - (time.monotonic() - started)))


def cmd_follow(args):
    files = []
    width = max(len(a.split("=", 1)[0]) for a in args)
    for arg in args:
        name, path = arg.split("=", 1)
        files.append([name.ljust(width), path, None, b""])
    while True:
        for entry in files:
            name, path, handle, partial = entry
            if handle is None:
                try:
                    handle = entry[2] = open(path, "rb")
                except OSError:
                    continue
            data = handle.read()
            if not data:
                continue
            data = partial + data
            *complete, entry[3] = data.split(b"\n")
            for line in complete:
                print("%s | %s" % (name, line.decode("utf-8", "replace")), flush=True)
        time.sleep(0.1)


def main():
    # Stopped by demo/run with SIGTERM: quietly. Background helpers start with SIGINT ignored
    # (bash does that), so Ctrl-C is left to demo/run; in the foreground it ends us quietly.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    commands = {"nodes": cmd_nodes, "ready": cmd_ready, "stats": cmd_stats, "follow": cmd_follow}
    command = commands.get(sys.argv[1])
    if command is None:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return command(sys.argv[2:]) or 0
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
