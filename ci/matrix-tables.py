#!/usr/bin/env python3
"""Turns the KTAP files ci/kernel-matrix wrote into matrix.md and matrix.json.

Reads only the layout uffd-conform writes: top-level tests are cases (topic::case), their
subtests memory types. A trial's cell is pass, FAIL (behaviour differs) or skip (the kernel
or machine lacks what it needs), with the skip reason or failure diagnostics."""
import json
import re
import sys
from pathlib import Path

RESULT = re.compile(r"^(ok|not ok) (\d+) ([^#]*?)\s*(?:#\s*(\w+)?\s*(.*))?$")


def parse(text):
    """{trial: (verdict, why)} from one KTAP document in uffd-conform's layout."""
    trials, pending, diags = {}, [], []
    for line in text.splitlines():
        body = line[2:] if line.startswith("  ") else None
        if body is not None:
            if body.startswith("#"):
                diags.append(body[1:].strip())
                continue
            m = RESULT.match(body)
            if m:
                ok, _, name, directive, data = m.groups()
                if directive == "SKIP":
                    pending.append((name, "skip", data))
                elif ok == "ok":
                    pending.append((name, "pass", ""))
                else:
                    pending.append((name, "FAIL", " / ".join(diags) or data or ""))
                diags = []
            continue
        m = RESULT.match(line)
        if m:
            case = m.group(3)
            for name, verdict, why in pending:
                trials[f"{case}::{name}"] = (verdict, why)
            pending, diags = [], []
    return trials


def main(out):
    out = Path(out)
    kernels = [l.split("\t") for l in (out / "kernels.txt").read_text().splitlines() if l]
    columns, results = [], {}
    for release, pkg, code, secs in kernels:
        ktap = out / (f"{release}.ktap")
        columns.append({"kernel": release, "package": pkg, "exit": int(code), "seconds": secs})
        results[release] = parse(ktap.read_text()) if ktap.exists() else {}
    names = sorted({t for r in results.values() for t in r})
    cases = sorted({t.rsplit("::", 1)[0] for t in names})
    matrix = {"kernels": columns, "trials": {t: {k: {"verdict": results[k].get(t, ("missing", ""))[0],
                                                       "why": results[k].get(t, ("", ""))[1]}
                                                   for k in results} for t in names}}
    (out / "matrix.json").write_text(json.dumps(matrix, indent=2) + "\n")

    md = ["# Kernel x case matrix", "",
          "Each cell counts the case's trials (one per memory type): pass / FAIL / skip. "
          "A skip means the kernel (or the VM) lacks what the trial needs; a FAIL means the "
          "kernel behaves differently from what the case expects.", ""]
    md.append("| case | " + " | ".join(c["kernel"] for c in columns) + " |")
    md.append("| --- |" + " --- |" * len(columns))
    for case in cases:
        cells = []
        for c in columns:
            vs = [v[0] for t, v in results[c["kernel"]].items() if t.rsplit("::", 1)[0] == case]
            cells.append(f"{vs.count('pass')} / {vs.count('FAIL')} / {vs.count('skip')}")
        md.append(f"| `{case}` | " + " | ".join(cells) + " |")
    md += ["", "| kernel | package | exit | seconds (boot + suite + power-off, TCG) |", "| --- | --- | --- | --- |"]
    md += [f"| {c['kernel']} | {c['package']} | {c['exit']} | {c['seconds']} |" for c in columns]
    differ = [t for t in names if len({v["verdict"] for v in matrix["trials"][t].values()}) > 1]
    md += ["", "## Where kernels differ", ""]
    if not differ:
        md.append("Every trial has the same verdict on every kernel.")
    for t in differ:
        md.append(f"- `{t}`: " + "; ".join(
            f"{k}: {v['verdict']}" + (f" ({v['why']})" if v["why"] else "")
            for k, v in matrix["trials"][t].items()))
    (out / "matrix.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
