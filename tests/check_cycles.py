#!/usr/bin/env python3
"""Fail when the files of a source folder call or include in a circle.

usage: check_cycles.py [-v] SRCDIR OBJDIR [SRCDIR OBJDIR]...

Several folders are checked as one graph (files named folder/x), so a
circle through two folders is found too.
Calls: for each SRCDIR/x.c, OBJDIR/x.o's undefined symbols (nm -u) that
another object of the folders defines (nm --defined-only, global) give an
edge x -> y. Calls through function pointers (a resolver, a callback) are
not edges: that is how a file reaches a caller without depending on it.
Includes: x.h -> y.h when x.h includes "y.h" from SRCDIR (a .c file has no
incoming include edge, so include cycles can only be among headers).
Every cycle found (a strongly connected group of files) is printed and the
exit status is 1; -v prints the call graph.
"""
import os
import re
import subprocess
import sys


def nm_symbols(obj, flags):
    out = subprocess.run(["nm", "-P"] + flags + [obj], check=True,
                         capture_output=True, text=True).stdout
    syms = set()
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 2:
            syms.add(f[0])
    return syms


def call_graph(pairs):
    names, objs = [], {}
    for srcdir, objdir in pairs:
        for f in sorted(os.listdir(srcdir)):
            if f.endswith(".c"):
                n = os.path.join(os.path.basename(srcdir), f[:-2])
                names.append(n)
                objs[n] = os.path.join(objdir, f[:-2] + ".o")
    defined, undefined = {}, {}
    for n in names:
        obj = objs[n]
        if not os.path.exists(obj):
            sys.exit("check_cycles: %s missing (build first)" % obj)
        defined[n] = nm_symbols(obj, ["-g", "--defined-only"])
        undefined[n] = nm_symbols(obj, ["-u"])
    owner = {}
    for n in names:
        for s in defined[n]:
            owner[s] = n
    graph = {n: {} for n in names}
    for n in names:
        for s in undefined[n]:
            o = owner.get(s)
            if o is not None and o != n:
                graph[n].setdefault(o, []).append(s)
    return graph


def include_graph(srcdirs):
    graph = {}
    inc = re.compile(r'^\s*#\s*include\s+"([^"]+)\.h"', re.M)
    where = {}
    for srcdir in srcdirs:
        for f in os.listdir(srcdir):
            if f.endswith(".h"):
                where.setdefault(f, os.path.join(srcdir, f))
    for f, path in sorted(where.items()):
        text = open(path, encoding="utf-8").read()
        graph[f] = {m + ".h": [] for m in inc.findall(text)
                    if m + ".h" in where}
    return graph


def cycles(graph):
    """Strongly connected groups of more than one node (Tarjan), and
    nodes with an edge to themselves."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph.get(v, {}):
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    args = sys.argv[1:]
    verbose = bool(args) and args[0] == "-v"
    if verbose:
        args = args[1:]
    if len(args) < 2 or len(args) % 2 != 0:
        sys.exit(__doc__.strip().splitlines()[2])
    pairs = list(zip(args[0::2], args[1::2]))
    srcdir = " ".join(p[0] for p in pairs)
    sys.setrecursionlimit(10000)
    calls = call_graph(pairs)
    incs = include_graph([p[0] for p in pairs])
    if verbose:
        for n in sorted(calls):
            print("%s -> %s" % (n, " ".join(sorted(calls[n])) or "-"))
    bad = 0
    for kind, graph in (("call", calls), ("include", incs)):
        for group in cycles(graph):
            bad += 1
            print("check_cycles: %s cycle in %s: %s" % (kind, srcdir,
                                                        " ".join(group)))
            for a in group:
                for b, syms in sorted(graph[a].items()):
                    if b in group:
                        print("  %s -> %s %s" % (a, b,
                                                 " ".join(sorted(syms)[:4])))
    if bad == 0:
        print("check_cycles: %s: %d files, no call or include cycle" %
              (srcdir, len(calls)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
