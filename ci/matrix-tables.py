#!/usr/bin/env python3
"""Turns the results ci/kernel-matrix wrote into matrix.md, matrix.json and matrix.html.

Usage: ci/matrix-tables.py OUT_DIR

OUT_DIR holds kernels.txt (release, package, exit code, seconds; tab-separated) and, per
release, the run record RELEASE.json (`--json`, docs/results-json.md) or, in directories
written before the records existed, only RELEASE.ktap (uffd-conform's KTAP layout: top-level
tests are cases (topic::case), their subtests memory types). The record is preferred.

A trial's verdict is one of:
  pass   it behaved as the case expects
  FAIL   the kernel behaves differently from what the case expects
  xfail  it failed, and the failure is a known kernel bug (known-bugs.yaml; `known_bug` in the
         record names the entry)
  xpass  a known bug covers it, but it passed (the kernel may be fixed)
  skip   the kernel (or the VM) lacks what the trial needs
  missing  the kernel's results do not have the trial
"""
import html
import json
import re
import sys
from pathlib import Path

RESULT = re.compile(r"^(ok|not ok) (\d+) ([^#]*?)\s*(?:#\s*(\w+)?\s*(.*))?$")
STATUS = {"pass": "pass", "fail": "FAIL", "skip": "skip", "xfail": "xfail", "xpass": "xpass"}
# Worst first: the colour of a cell holding several trials.
SEVERITY = ["FAIL", "xfail", "xpass", "missing", "pass", "skip"]
CLASS = {"FAIL": "fail", "xfail": "known", "xpass": "xpass", "pass": "pass", "skip": "skip",
         "missing": "missing"}


def parse_ktap(text):
    """{trial: {"verdict", "why"}} from one KTAP document in uffd-conform's layout."""
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
                directive = (directive or "").upper()
                if directive == "SKIP":
                    pending.append((name, "skip", data))
                elif directive in ("XFAIL", "XPASS"):
                    pending.append((name, directive.lower(), " / ".join(diags) or data or ""))
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
                trials[f"{case}::{name}"] = {"verdict": verdict, "why": why}
            pending, diags = [], []
    return trials


def parse_record(record):
    """{trial: {"verdict", "why"[, "known_bug"]}} from one run record (docs/results-json.md)."""
    trials = {}
    for t in record.get("trials", []):
        verdict = STATUS.get(t.get("status"), "FAIL")
        why = t.get("skip_reason") if verdict == "skip" else t.get("message")
        cell = {"verdict": verdict, "why": why or ""}
        bug = t.get("known_bug")
        if bug:
            cell["known_bug"] = {k: bug[k] for k in ("id", "summary", "link") if bug.get(k)}
        elif verdict in ("xfail", "xpass") and t.get("baseline"):
            # Judged by a baseline file rather than the suite's known-bugs list.
            b = t["baseline"]
            cell["baseline"] = b.get("reason") or b.get("file") or "baseline"
        trials[t["name"]] = cell
    return trials


def load(out, release):
    """(trials, source) for one kernel: its JSON record if present, else its KTAP."""
    record = out / f"{release}.json"
    if record.exists():
        try:
            return parse_record(json.loads(record.read_text())), "json"
        except (ValueError, KeyError, TypeError) as e:
            print(f"{record}: unreadable run record ({e}); falling back to KTAP", file=sys.stderr)
    ktap = out / f"{release}.ktap"
    if ktap.exists():
        return parse_ktap(ktap.read_text(errors="replace")), "ktap"
    return {}, "none"


def case_of(trial):
    return trial.rsplit("::", 1)[0]


def counts(verdicts):
    """`pass / FAIL / skip`, then ` / N known` and ` / N xpass` where non-zero; `-` for none."""
    if not verdicts:
        return "-"
    text = f"{verdicts.count('pass')} / {verdicts.count('FAIL')} / {verdicts.count('skip')}"
    if verdicts.count("xfail"):
        text += f" / {verdicts.count('xfail')} known"
    if verdicts.count("xpass"):
        text += f" / {verdicts.count('xpass')} xpass"
    return text


def one_line(text):
    return " / ".join(l.strip() for l in text.splitlines() if l.strip())


def worst(verdicts):
    return min(verdicts, key=SEVERITY.index) if verdicts else "missing"


def main(out):
    out = Path(out)
    kernels = [l.split("\t") for l in (out / "kernels.txt").read_text().splitlines() if l]
    columns, results = [], {}
    for release, pkg, code, secs in kernels:
        results[release], source = load(out, release)
        columns.append({"kernel": release, "package": pkg, "exit": int(code), "seconds": secs,
                        "source": source})
    names = sorted({t for r in results.values() for t in r})
    cases = sorted({case_of(t) for t in names})
    missing = {"verdict": "missing", "why": ""}
    matrix = {"kernels": columns,
              "trials": {t: {k: results[k].get(t, missing) for k in results} for t in names}}
    # Per kernel: known-bug id -> {"summary", "link", "trials": [...]}.
    known = {c["kernel"]: {} for c in columns}
    bugs = {}
    for k, trials in results.items():
        for t, cell in sorted(trials.items()):
            bug = cell.get("known_bug")
            if bug:
                bugs.setdefault(bug["id"], bug)
                known[k].setdefault(bug["id"], []).append((t, cell["verdict"]))
    matrix["known_bugs"] = {i: {**bugs[i], "kernels": {k: [t for t, _ in known[k][i]]
                                                        for k in known if i in known[k]}}
                            for i in sorted(bugs)}
    (out / "matrix.json").write_text(json.dumps(matrix, indent=2) + "\n")

    def verdicts(kernel, case):
        return [v["verdict"] for t, v in results[kernel].items() if case_of(t) == case]

    md = ["# Kernel x case matrix", "",
          "Each cell counts the case's trials (one per memory type): pass / FAIL / skip, then "
          "`N known` when N trials failed because of a known kernel bug (XFAIL: see "
          "[Known kernel bugs](#known-kernel-bugs)) and `N xpass` when a known bug covers a trial "
          "that passed. A skip means the kernel (or the VM) lacks what the trial needs; a FAIL "
          "means the kernel behaves differently from what the case expects, and no known bug "
          "explains it. The same matrix with every failure's text: [matrix.html](matrix.html).",
          ""]
    md.append("| case | " + " | ".join(c["kernel"] for c in columns) + " |")
    md.append("| --- |" + " --- |" * len(columns))
    for case in cases:
        cells = [counts(verdicts(c["kernel"], case)) for c in columns]
        md.append(f"| `{case}` | " + " | ".join(cells) + " |")
    md += ["", "| kernel | package | exit | seconds (boot + suite + power-off, TCG) | results | "
               "pass | FAIL | known | xpass | skip |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in columns:
        vs = [v["verdict"] for v in results[c["kernel"]].values()]
        md.append(f"| {c['kernel']} | {c['package']} | {c['exit']} | {c['seconds']} | "
                  f"{c['source']} | {vs.count('pass')} | {vs.count('FAIL')} | "
                  f"{vs.count('xfail')} | {vs.count('xpass')} | {vs.count('skip')} |")
    md += ["", "## Known kernel bugs", ""]
    if not bugs:
        md.append("No trial on any kernel is covered by a known kernel bug.")
    else:
        md.append("Entries of known-bugs.yaml seen per kernel (known: the trials failed, as "
                  "the entry says; xpass: covered, but passed).")
        md.append("")
        md += ["| kernel | known bugs |", "| --- | --- |"]
        for c in columns:
            ids = known[c["kernel"]]
            md.append(f"| {c['kernel']} | " + ("; ".join(
                f"`{i}` ({sum(v == 'xfail' for _, v in ids[i])} known"
                + (f", {sum(v == 'xpass' for _, v in ids[i])} xpass"
                   if any(v == "xpass" for _, v in ids[i]) else "") + ")"
                for i in sorted(ids)) or "none") + " |")
        md.append("")
        for i in sorted(bugs):
            b = bugs[i]
            link = f" ({b['link']})" if b.get("link") else ""
            md.append(f"- `{i}`: {b.get('summary', '')}{link}")
    differ = [t for t in names if len({v["verdict"] for v in matrix["trials"][t].values()}) > 1]
    md += ["", "## Where kernels differ", ""]
    if not differ:
        md.append("Every trial has the same verdict on every kernel.")
    for t in differ:
        md.append(f"- `{t}`: " + "; ".join(
            f"{k}: {v['verdict']}"
            + (f" [{v['known_bug']['id']}]" if v.get("known_bug") else "")
            + (f" ({one_line(v['why'])})" if v["why"] else "")
            for k, v in matrix["trials"][t].items()))
    (out / "matrix.md").write_text("\n".join(md) + "\n")
    (out / "matrix.html").write_text(render_html(columns, results, cases, bugs, known))


def anchor(text):
    """An id attribute value made of [a-z0-9-] only."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
table.matrix { border-collapse: collapse; }
table.matrix th, table.matrix td { border: 1px solid #bbb; padding: 2px 6px; white-space: nowrap; }
table.matrix thead th { position: sticky; top: 0; background: #f4f4f4; font-weight: 600;
  writing-mode: vertical-rl; transform: rotate(180deg); text-align: left; vertical-align: bottom; }
table.matrix thead th.case { writing-mode: horizontal-tb; transform: none; }
table.matrix td.name { font-family: ui-monospace, monospace; font-size: 12px; }
td.cell { text-align: center; font-variant-numeric: tabular-nums; }
td.cell a { color: inherit; }
td.pass { background: #b7e4b0; }
td.fail { background: #f08080; color: #3b0000; font-weight: 700; }
td.known { background: #ffc24d; color: #3d2700; }
td.xpass { background: #b7e4b0; outline: 3px dashed #d08800; outline-offset: -3px; }
td.skip { background: #dcdcdc; color: #555; }
td.missing { background: #fff; color: #999; }
.legend span { display: inline-block; padding: 1px 8px; margin-right: .5em; border: 1px solid #bbb; }
section.detail { border-left: 4px solid #f08080; padding: .2em .8em; margin: 1em 0; }
section.detail.known { border-left-color: #ffc24d; }
section.detail:target { background: #fff8dc; }
pre.why { white-space: pre-wrap; background: #f7f7f7; padding: .5em; margin: .3em 0; font-size: 12px; }
li.bug:target { background: #fff8dc; }
"""


def render_html(columns, results, cases, bugs, known):
    e = html.escape
    kernels = [c["kernel"] for c in columns]
    kid = {k: f"k{n}" for n, k in enumerate(kernels)}
    cid = {c: f"c{n}" for n, c in enumerate(cases)}
    by_cell = {}
    for k in kernels:
        for t, cell in results[k].items():
            by_cell.setdefault((k, case_of(t)), []).append((t, cell))
    p = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         "<title>uffd-conform kernel matrix</title>", f"<style>{CSS}</style></head><body>",
         "<h1>uffd-conform: kernel &times; case matrix</h1>",
         '<p class="legend">Each cell counts the case&#x27;s trials (one per memory type): '
         "pass / FAIL / skip, then known (XFAIL: a known kernel bug) and xpass (a known bug "
         "covers the trial, but it passed). Colour: the worst trial of the cell. "
         '<span class="pass" style="background:#b7e4b0">pass</span>'
         '<span class="fail" style="background:#f08080">FAIL</span>'
         '<span class="known" style="background:#ffc24d">known bug</span>'
         '<span class="xpass" style="background:#b7e4b0;outline:3px dashed #d08800">xpass</span>'
         '<span class="skip" style="background:#dcdcdc">skip</span>'
         "Click a red or amber cell for its failure text.</p>",
         '<table class="matrix"><thead><tr><th class="case">case</th>']
    p += [f'<th id="{kid[k]}" title="{e(c["package"])}">{e(k)}</th>'
          for k, c in zip(kernels, columns)]
    p.append("</tr></thead><tbody>")
    details = []
    for case in cases:
        p.append(f'<tr id="{cid[case]}"><td class="name">{e(case)}</td>')
        for k in kernels:
            trials = sorted(by_cell.get((k, case), []))
            vs = [cell["verdict"] for _, cell in trials]
            v = worst(vs)
            text = e(counts(vs))
            bad = [(t, cell) for t, cell in trials if cell["verdict"] in ("FAIL", "xfail", "xpass")]
            title = f"{k}: {case}"
            ids = sorted({c["known_bug"]["id"] for _, c in trials if c.get("known_bug")})
            if ids:
                title += " (known bug: " + ", ".join(ids) + ")"
            at = f'data-kernel="{e(k)}" data-case="{e(case)}" class="cell {CLASS[v]}" title="{e(title)}"'
            if bad:
                ref = f"f-{kid[k]}-{cid[case]}"
                p.append(f'<td {at}><a href="#{ref}">{text}</a></td>')
                details.append((ref, k, case, bad))
            else:
                p.append(f'<td {at}>{text}</td>')
        p.append("</tr>")
    p.append("</tbody></table>")

    p.append('<h2 id="kernels">Kernels</h2><table class="matrix"><thead><tr>'
             '<th class="case">kernel</th><th class="case">package</th><th class="case">exit</th>'
             '<th class="case">seconds</th><th class="case">results</th><th class="case">pass</th>'
             '<th class="case">FAIL</th><th class="case">known</th><th class="case">xpass</th>'
             '<th class="case">skip</th><th class="case">known bugs</th></tr></thead><tbody>')
    for c in columns:
        k = c["kernel"]
        vs = [v["verdict"] for v in results[k].values()]
        ids = ", ".join(f'<a href="#bug-{anchor(i)}">{e(i)}</a>' for i in sorted(known[k]))
        p.append(f'<tr><td class="name">{e(k)}</td><td>{e(c["package"])}</td><td>{c["exit"]}</td>'
                 f'<td>{e(str(c["seconds"]))}</td><td>{e(c["source"])}</td>'
                 + "".join(f"<td>{vs.count(x)}</td>" for x in ("pass", "FAIL", "xfail", "xpass", "skip"))
                 + f"<td>{ids or 'none'}</td></tr>")
    p.append("</tbody></table>")

    p.append('<h2 id="known-bugs">Known kernel bugs</h2>')
    if not bugs:
        p.append("<p>No trial on any kernel is covered by a known kernel bug.</p>")
    else:
        p.append("<ul>")
        for i in sorted(bugs):
            b = bugs[i]
            link = (f' &mdash; <a class="bug-link" href="{e(b["link"])}">{e(b["link"])}</a>'
                    if b.get("link") else "")
            where = ", ".join(e(k) for k in kernels if i in known[k])
            p.append(f'<li class="bug" id="bug-{anchor(i)}"><code>{e(i)}</code>: '
                     f'{e(b.get("summary", ""))}{link}<br>seen on: {where}</li>')
        p.append("</ul>")

    p.append('<h2 id="failures">Failures and known bugs</h2>')
    if not details:
        p.append("<p>No trial failed on any kernel.</p>")
    for ref, k, case, bad in details:
        cls = "detail" if any(c["verdict"] == "FAIL" for _, c in bad) else "detail known"
        p.append(f'<section class="{cls}" id="{ref}"><h3>{e(case)} on {e(k)}</h3>')
        for t, cell in bad:
            label = {"FAIL": "FAIL", "xfail": "XFAIL (known kernel bug)",
                     "xpass": "XPASS (covered by a known bug, but passed)"}[cell["verdict"]]
            p.append(f'<p><code>{e(t)}</code>: <b>{label}</b>')
            bug = cell.get("known_bug")
            if bug:
                p.append(f' &mdash; <a href="#bug-{anchor(bug["id"])}"><code>{e(bug["id"])}</code></a>: '
                         f'{e(bug.get("summary", ""))}')
                if bug.get("link"):
                    p.append(f' (<a class="bug-link" href="{e(bug["link"])}">{e(bug["link"])}</a>)')
            elif cell.get("baseline"):
                p.append(f" &mdash; baseline: {e(cell['baseline'])}")
            p.append("</p>")
            if cell["why"]:
                p.append(f'<pre class="why">{e(cell["why"])}</pre>')
        p.append(f'<p><a href="#{cid[case]}">back to the matrix</a></p></section>')
    p.append("</body></html>")
    return "\n".join(p) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
