#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The layers of lib/, bottom to top, and the check that the code keeps
to them (suite 'api', test 'layers'; CONTRIBUTING.md describes them):

  every C file of lib/ and lib/sources/ has a layer below;
  a file includes the private header (*-internal.h) of its own layer or
  of a layer below it, never of one above;
  lib/sources/ reach the core through source-internal.h and the value
  headers only;
  a file calls functions of its own layer or of a layer below it, never
  of one above (read from the objects of the internal library with nm),
  and no files call each other in a circle.

A binding (bindings/lua, bindings/python) is checked for circles only:
its module file is at the top, its helpers file at the bottom.

usage: check-layers.py LIBDIR ARCHIVE   (prints TAP)
       check-layers.py --binding NAME ARCHIVE
"""
import os
import re
import subprocess
import sys

# Bottom to top. A header X-internal.h belongs to the layer of X.c; the
# headers with no .c of their own are named here.
LAYERS = [
    ("base", [
        "alloc.c", "blocks.c", "clock.c", "errors.c", "intern.c", "names.c",
        "version.c", "text.c",
        "log.c", "common-internal.h", "hash-internal.h", "list-internal.h",
        "lock-internal.h", "callout-internal.h",
    ]),
    ("values", [
        "kv.c", "event.c", "event-codec.c", "options.c", "backoff.c",
        "histogram.c", "route.c",
    ]),
    ("platform and records", ["loop.c", "invocation.c", "context.c"]),
    ("leaves", [
        "queue.c", "ordering.c", "dueheap.c", "flow.c", "breaker.c",
        "idempotency.c", "deadstore.c", "eventlog.c", "metrics.c",
        "result.c", "intake.c", "journal.c", "journal-pending.c",
        "journal-store.c",
    ]),
    ("dispatch", ["dispatch.c", "registry.c"]),
    ("admission", ["admit.c"]),
    ("settle", ["settle.c"]),
    ("executors", ["worker.c", "pool.c", "loopexec.c", "watchdog.c"]),
    ("api", [
        "runtime.c", "publish.c", "invoke.c", "control.c", "stats.c",
        "deadletter.c", "prometheus.c", "jsonlog.c", "source.c",
        "journaling.c", "journal-none.c",
    ]),
    ("sources", ["sources/"]),
    # The 0.1 names of renamed calls, each calling its new name.
    ("deprecated names", ["deprecated.c"]),
]

# What lib/sources/ may include of the core, beyond its own headers: the
# narrow interface and the headers of values.
SOURCES_MAY_INCLUDE = {"source-internal.h", "stats-internal.h"}
VALUES = 1  # the index of "values" in LAYERS

results = []


def check(ok, what, problems):
    results.append((ok, what, problems))


def layer_of(name, index):
    """name: a path under lib/ (sources/x.c) or a header's base name."""
    if name.startswith("sources/"):
        return index["sources/"]
    if name in index:
        return index[name]
    m = re.match(r"(.*)-internal\.h$", name)
    if m and m.group(1) + ".c" in index:
        return index[m.group(1) + ".c"]
    return None


def call_edges(archive):
    """file -> {file it calls: [symbols]}, from nm on an archive of
    objects: a file calls another when it uses a symbol the other
    defines. Objects of lib/sources/ (sources_x.c.o) are named
    sources/x.c; those of a binding built from the directory above
    (.._x.c.o) x.c."""
    out = subprocess.run(["nm", "-A", archive], capture_output=True,
                         text=True, check=True).stdout
    defined, used = {}, {}
    for line in out.splitlines():
        m = re.match(r"^[^:]+:([^:]+\.c\.o):\s*(\S*)\s+([A-Za-z])\s+(\S+)$",
                     line)
        if not m:
            continue
        obj, kind, sym = m.group(1), m.group(3), m.group(4)
        src = os.path.basename(obj)[:-2]
        if src.startswith("sources_"):
            src = "sources/" + src[len("sources_"):]
        elif src.startswith(".._"):
            src = src[len(".._"):]
        if kind == "U":
            used.setdefault(src, set()).add(sym)
        elif kind.isupper():
            defined[sym] = src
    edges = {}
    for src, syms in used.items():
        for s in syms:
            dst = defined.get(s)
            if dst and dst != src:
                edges.setdefault(src, {}).setdefault(dst, []).append(s)
    return edges


def circles(edges):
    """The sets of files that call each other in a circle (Tarjan's
    strongly connected components of more than one file)."""
    sys.setrecursionlimit(10000)
    order, low, on, stack, comps = {}, {}, set(), [], []

    def visit(v):
        order[v] = low[v] = len(order)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(set(edges) | {d for ds in edges.values() for d in ds}):
        if v not in order:
            visit(v)
    return comps


def report():
    print("1..%d" % len(results))
    failed = 0
    for i, (ok, what, problems) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", i, what))
        for p in problems:
            print("# " + p)
        failed += not ok
    return 1 if failed else 0


def main_binding(name, archive):
    """A binding: its files call each other in no circle."""
    comps = circles(call_edges(archive))
    check(not comps, "no files of the %s binding call each other in a "
          "circle" % name, [" ".join(c) for c in comps])
    return report()


def main():
    if sys.argv[1] == "--binding":
        return main_binding(sys.argv[2], sys.argv[3])
    libdir, archive = sys.argv[1], sys.argv[2]
    index = {}
    for i, (_, names) in enumerate(LAYERS):
        for n in names:
            index[n] = i

    files = sorted(f for f in os.listdir(libdir) if f.endswith((".c", ".h")))
    files += sorted("sources/" + f
                    for f in os.listdir(os.path.join(libdir, "sources"))
                    if f.endswith((".c", ".h")))

    # Every file has a layer: a new file must be placed.
    unplaced = [f for f in files
                if not f.startswith("sources/") and layer_of(f, index) is None]
    check(not unplaced, "every file of lib/ has a layer", unplaced)

    # Includes point down (or stay within the layer).
    upward = []
    for f in files:
        lf = layer_of(f, index)
        if lf is None:
            continue
        with open(os.path.join(libdir, f), encoding="utf-8") as src:
            text = src.read()
        for inc in re.findall(r'^#include "([^"]+)"', text, re.M):
            base = os.path.basename(inc)
            if f.startswith("sources/"):
                own = os.path.exists(os.path.join(libdir, "sources", base))
                lh = layer_of(base, index)
                if own or base in SOURCES_MAY_INCLUDE or (
                        lh is not None and lh <= VALUES):
                    continue
                upward.append("%s includes %s" % (f, inc))
                continue
            lh = layer_of(base, index)
            if lh is not None and lh > lf:
                upward.append("%s (%s) includes %s (%s)" %
                              (f, LAYERS[lf][0], inc, LAYERS[lh][0]))
    check(not upward,
          "each private header is included by its own layer and those above",
          upward)

    # Calls, from the symbols of the internal library's objects.
    edges = call_edges(archive)
    up_calls = []
    for src, dsts in sorted(edges.items()):
        ls = layer_of(src, index)
        for dst, syms in sorted(dsts.items()):
            ld = layer_of(dst, index)
            if ls is None or ld is None:
                up_calls.append("%s -> %s: file without a layer" % (src, dst))
            elif ld > ls:
                up_calls.append("%s (%s) calls %s (%s): %s" %
                                (src, LAYERS[ls][0], dst, LAYERS[ld][0],
                                 ", ".join(sorted(syms)[:4])))
    check(not up_calls, "calls go to the same layer or down", up_calls)

    # No circle.
    comps = circles(edges)
    check(not comps, "no files call each other in a circle",
          [" ".join(c) for c in comps])

    return report()


if __name__ == "__main__":
    sys.exit(main())
