#!/usr/bin/env python3
"""Diffs two `run --json` records, names and timings aside, with the machine's own
nondeterminism aside too: physical frame numbers in pagemap entries, migration by compaction on
a one-node host (pass or skip), and how many pages ksmd merged in the known-bug KSM trials."""
import json, re, sys

def scrub(o):
    if isinstance(o, dict): return {k: scrub(v) for k, v in o.items()}
    if isinstance(o, list): return [scrub(v) for v in o]
    if isinstance(o, str): return re.sub(r"0x[0-9a-f]{12,16}", "0xPFN", o)
    return o

def norm(path):
    d = json.load(open(path))
    trials = {}
    for t in d["trials"]:
        name = t["name"]
        t = {k: v for k, v in t.items() if k != "duration_ms"}
        if t["topic"] == "migrate" and t["status"] in ("pass", "skip"):
            t = {"status": "pass-or-skip (compaction)"}
        if t.get("known_bug") or t["status"] == "xfail":
            t = {"status": t["status"], "known_bug": t.get("known_bug")}
        trials[name] = t
    d = {k: v for k, v in d.items() if k not in ("started_at", "duration_ms", "tool", "trials", "summary")}
    return scrub(d), scrub(trials)

(a, ta), (b, tb) = norm(sys.argv[1]), norm(sys.argv[2])
diffs = []
def walk(x, y, path):
    if isinstance(x, dict) and isinstance(y, dict):
        for k in sorted(set(x) | set(y)):
            if k not in x: diffs.append(f"{path}/{k}: only in the second")
            elif k not in y: diffs.append(f"{path}/{k}: only in the first")
            else: walk(x[k], y[k], f"{path}/{k}")
    elif x != y:
        diffs.append(f"{path}: {json.dumps(x)[:200]} -> {json.dumps(y)[:200]}")
walk(a, b, "")
walk(ta, tb, "/trials")
print(f"{len(ta)} and {len(tb)} trials; {len(diffs)} differences")
for d in diffs: print(d)
sys.exit(1 if diffs else 0)
