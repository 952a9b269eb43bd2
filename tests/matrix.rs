//! Checks of the kernel matrix's tables (ci/matrix-tables.py) on a small hand-written output
//! directory (tests/matrix-fixture: two kernels with run records, one with only KTAP): the
//! markdown counts with known bugs, matrix.json, and matrix.html: cell classes, links from
//! failing and known-bug cells to their failure text, known-bug entries, escaping, and a
//! rendering by a headless Chromium when installed. Missing tools make a test ignored with the
//! reason, never a pass.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use libtest_mimic::{Completion, Failed, Trial};

mod common;
use common::{check, chromium, headless, root, screenshot};

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    libtest_mimic::run(&args, trials()).exit();
}

fn trials() -> Vec<Trial> {
    vec![
        Trial::ignorable_test(
            "matrix::markdown-counts-known-bugs",
            markdown_counts_known_bugs,
        ),
        Trial::ignorable_test("matrix::json-keeps-known-bugs", json_keeps_known_bugs),
        Trial::ignorable_test("matrix::html-cells-and-links", html_cells_and_links),
        Trial::ignorable_test("matrix::html-in-chromium", html_in_chromium),
    ]
}

const K99: &str = "6.1.0-99-cloud-amd64";
const HOST: &str = "host-6.99.0-fixture";
const K98: &str = "6.1.0-98-cloud-amd64";
const BUG: &str = "ksm-merge-drops-uffd-wp";
const BUG_LINK: &str =
    "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/tree/mm/ksm.c";

/// A copy of tests/matrix-fixture with the tables written into it (once per test process), or
/// why not. `Ok(None)`: python3 is missing.
fn tables() -> Result<Option<&'static Path>, Failed> {
    static T: OnceLock<Result<Option<PathBuf>, String>> = OnceLock::new();
    let made = T.get_or_init(|| {
        if !Command::new("python3")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Ok(None);
        }
        let dir = std::env::temp_dir()
            .join(format!("uffd-conform-test-{}", std::process::id()))
            .join("matrix");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let fixture = root().join("tests/matrix-fixture");
        for entry in
            std::fs::read_dir(&fixture).map_err(|e| format!("{}: {e}", fixture.display()))?
        {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_file() {
                std::fs::copy(&path, dir.join(path.file_name().expect("a file name")))
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        let out = Command::new("python3")
            .arg(root().join("ci/matrix-tables.py"))
            .arg(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "ci/matrix-tables.py: exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(Some(dir))
    });
    match made {
        Ok(d) => Ok(d.as_deref()),
        Err(e) => Err(e.clone().into()),
    }
}

/// The file NAME the tables wrote, or `Err(Completion)` when python3 is missing.
fn written(name: &str) -> Result<Result<(PathBuf, String), Completion>, Failed> {
    let Some(dir) = tables()? else {
        return Ok(Err(Completion::ignored_with(
            "python3 is not installed (ci/matrix-tables.py needs it)",
        )));
    };
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Ok((path, text)))
}

fn markdown_counts_known_bugs() -> Result<Completion, Failed> {
    let md = match written("matrix.md")? {
        Ok((_, t)) => t,
        Err(c) => return Ok(c),
    };
    let row = |case: &str| {
        md.lines()
            .find(|l| l.starts_with(&format!("| `{case}` |")))
            .unwrap_or_default()
            .to_string()
    };
    // Columns in kernels.txt order: 6.1.0-99 (record), host (record), 6.1.0-98 (KTAP only).
    for (case, want) in [
        (
            "ksm::ksm-keeps-protection",
            "| 0 / 0 / 0 / 2 known | 0 / 0 / 1 / 1 known | 0 / 1 / 1 |",
        ),
        (
            "wp::protect-then-write-faults-once",
            "| 2 / 0 / 0 | 1 / 1 / 0 | 2 / 0 / 0 |",
        ),
        (
            "async::wp-async-tracks-writes",
            "| 0 / 0 / 1 | 0 / 0 / 1 | 0 / 0 / 1 |",
        ),
        (
            "regressions::close-uffd-clears-protection",
            "| 0 / 0 / 0 / 1 xpass | 1 / 0 / 0 | - |",
        ),
    ] {
        let r = row(case);
        check(r.ends_with(want), || {
            format!("matrix.md row of {case} is {r:?}, want it to end {want:?}")
        })?;
    }
    for want in [
        "## Known kernel bugs",
        &format!("| {K99} | `close-uffd-keeps-protection` (0 known, 1 xpass); `{BUG}` (2 known) |"),
        &format!("| {HOST} | `{BUG}` (1 known) |"),
        &format!("| {K98} | none |"),
        &format!("- `{BUG}`: KSM merging drops uffd-wp from the merged pte ({BUG_LINK})"),
        // Per-kernel totals, and where each came from.
        &format!("| {K99} | linux-image-6.1.0-99-cloud-amd64-unsigned | 0 | 30 | json | 2 | 0 | 2 | 1 | 1 |"),
        &format!("| {K98} | linux-image-6.1.0-98-cloud-amd64-unsigned | 1 | 29 | ktap | 2 | 1 | 0 | 0 | 2 |"),
    ] {
        check(md.contains(want), || format!("matrix.md lacks {want:?}:\n{md}"))?;
    }
    // A multi-line failure text stays on its list item's line.
    check(md.lines().all(|l| !l.starts_with("    pagemap")), || {
        format!("matrix.md breaks a failure text over lines:\n{md}")
    })?;
    Ok(Completion::Completed)
}

fn json_keeps_known_bugs() -> Result<Completion, Failed> {
    let text = match written("matrix.json")? {
        Ok((_, t)) => t,
        Err(c) => return Ok(c),
    };
    let m: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let cell = &m["trials"]["ksm::ksm-keeps-protection::anon"];
    check(
        cell[K99]["verdict"] == "xfail" && cell[K99]["known_bug"]["id"] == BUG,
        || format!("ksm anon on {K99}: {}", cell[K99]),
    )?;
    check(
        cell[K98]["verdict"] == "FAIL" && cell[K98].get("known_bug").is_none(),
        || format!("ksm anon on {K98} (KTAP): {}", cell[K98]),
    )?;
    let wp = &m["trials"]["wp::protect-then-write-faults-once::anon"][HOST];
    check(
        wp["verdict"] == "FAIL"
            && wp["why"]
                .as_str()
                .is_some_and(|w| w.contains("<no message>")),
        || format!("wp anon on the host: {wp}"),
    )?;
    let bug = &m["known_bugs"][BUG];
    check(
        bug["link"] == BUG_LINK
            && bug["kernels"][K99].as_array().map(Vec::len) == Some(2)
            && bug["kernels"][HOST].as_array().map(Vec::len) == Some(1)
            && bug["kernels"].get(K98).is_none(),
        || format!("known_bugs.{BUG}: {bug}"),
    )?;
    let sources: Vec<_> = m["kernels"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| k["source"].as_str().unwrap_or_default().to_string())
        .collect();
    check(sources == ["json", "json", "ktap"], || {
        format!("kernel sources {sources:?}")
    })?;
    Ok(Completion::Completed)
}

/// The `<td>` of KERNEL x CASE in the matrix: (class attribute, link target, text).
fn cell<'a>(
    page: &'a str,
    kernel: &str,
    case: &str,
) -> Result<(&'a str, Option<&'a str>, &'a str), Failed> {
    let key = format!("data-kernel=\"{kernel}\" data-case=\"{case}\"");
    let at = page
        .find(&key)
        .ok_or_else(|| format!("matrix.html has no cell {key}"))?;
    let td = &page[at..];
    let td = &td[..td.find("</td>").ok_or("unterminated <td>")?];
    let class = attr(td, "class").ok_or_else(|| format!("cell without class: {td}"))?;
    let href = attr(td, "href");
    let text = td
        .trim_end_matches("</a>")
        .rsplit('>')
        .next()
        .unwrap_or_default();
    Ok((class, href, text))
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// The element whose id is ID, from its start tag to the end of the page's next `</section>`.
fn target<'a>(page: &'a str, id: &str) -> Result<&'a str, Failed> {
    let at = page
        .find(&format!(" id=\"{id}\""))
        .ok_or_else(|| format!("matrix.html links to #{id}, which no element has"))?;
    let rest = &page[at..];
    Ok(&rest[..rest.find("</section>").unwrap_or(rest.len())])
}

fn html_cells_and_links() -> Result<Completion, Failed> {
    let page = match written("matrix.html")? {
        Ok((_, t)) => t,
        Err(c) => return Ok(c),
    };
    // Self-contained: no script, stylesheet or image from elsewhere.
    for bad in ["<script", "<link", "src=", "@import"] {
        check(!page.contains(bad), || {
            format!("matrix.html contains {bad:?}")
        })?;
    }
    // Each class has its own colour.
    for rule in [
        "td.pass { background: #b7e4b0; }",
        "td.fail { background: #f08080;",
        "td.known { background: #ffc24d;",
        "td.skip { background: #dcdcdc;",
        "td.xpass { background: #b7e4b0; outline:",
    ] {
        check(page.contains(rule), || {
            format!("matrix.html's style lacks {rule:?}")
        })?;
    }

    let (class, href, text) = cell(&page, K99, "ksm::ksm-keeps-protection")?;
    check(
        class == "cell known" && text == "0 / 0 / 0 / 2 known",
        || format!("known-bug cell: class {class:?}, text {text:?}"),
    )?;
    let detail = target(
        &page,
        href.ok_or("the known-bug cell links nowhere")?
            .trim_start_matches('#'),
    )?;
    for want in [
        "XFAIL (known kernel bug)",
        &format!("<a href=\"#bug-{BUG}\"><code>{BUG}</code></a>: KSM merging drops uffd-wp from the merged pte"),
        &format!("href=\"{BUG_LINK}\""),
        "ksm::ksm-keeps-protection::anon",
        "ksm::ksm-keeps-protection::shmem-private",
        "expected 1, observed 0 [entry: present|soft-dirty (0x8080000000002ce1)]",
    ] {
        check(detail.contains(want), || format!("the known-bug cell's target lacks {want:?}: {detail}"))?;
    }
    let bug = target(&page, &format!("bug-{BUG}"))?;
    let bug = &bug[..bug.find("</li>").unwrap_or(bug.len())];
    check(
        bug.contains("KSM merging drops uffd-wp")
            && bug.contains(&format!("seen on: {K99}, {HOST}"))
            && bug.contains(BUG_LINK),
        || format!("the known-bug entry: {bug}"),
    )?;

    // An ordinary failure: red, linked to its text, which is escaped.
    let (class, href, text) = cell(&page, HOST, "wp::protect-then-write-faults-once")?;
    check(class == "cell fail" && text == "1 / 1 / 0", || {
        format!("failing cell: class {class:?}, text {text:?}")
    })?;
    let detail = target(
        &page,
        href.ok_or("the failing cell links nowhere")?
            .trim_start_matches('#'),
    )?;
    check(
        detail.contains("<b>FAIL</b>")
            && detail.contains("expected &lt;no message&gt; &amp; &quot;nothing&quot;, observed")
            && !detail.contains("bug-"),
        || format!("the failing cell's target: {detail}"),
    )?;
    check(
        !page.contains("<no message>") && !page.contains("<huge pages>"),
        || "matrix.html has unescaped failure or skip text".into(),
    )?;

    // The KTAP-only kernel: a plain failure, no known bug.
    let (class, href, _) = cell(&page, K98, "ksm::ksm-keeps-protection")?;
    check(class == "cell fail" && href.is_some(), || {
        format!("KTAP kernel's ksm cell: {class:?} {href:?}")
    })?;
    // XPASS: its own class, linked to the entry.
    let (class, href, _) = cell(&page, K99, "regressions::close-uffd-clears-protection")?;
    check(class == "cell xpass", || {
        format!("xpass cell: class {class:?}")
    })?;
    let detail = target(
        &page,
        href.ok_or("the xpass cell links nowhere")?
            .trim_start_matches('#'),
    )?;
    check(
        detail.contains("XPASS") && detail.contains("#bug-close-uffd-keeps-protection"),
        || format!("the xpass cell's target: {detail}"),
    )?;
    // Passing, skipped and absent trials: coloured, not linked.
    for (k, case, want) in [
        (K99, "wp::protect-then-write-faults-once", "cell pass"),
        (HOST, "async::wp-async-tracks-writes", "cell skip"),
        (
            K98,
            "regressions::close-uffd-clears-protection",
            "cell missing",
        ),
    ] {
        let (class, href, _) = cell(&page, k, case)?;
        check(class == want && href.is_none(), || {
            format!("{k} x {case}: class {class:?}, link {href:?}")
        })?;
    }
    // Every in-page link has its target.
    for piece in page.split("href=\"#").skip(1) {
        let id = &piece[..piece.find('"').unwrap_or(0)];
        check(page.contains(&format!(" id=\"{id}\"")), || {
            format!("dangling link #{id}")
        })?;
    }
    Ok(Completion::Completed)
}

fn html_in_chromium() -> Result<Completion, Failed> {
    let html = match written("matrix.html")? {
        Ok((p, _)) => p,
        Err(c) => return Ok(c),
    };
    let Some(browser) = chromium() else {
        return Ok(Completion::ignored_with(
            "chromium is not installed (Debian: apt-get install chromium); matrix.html checked as text only",
        ));
    };
    let dir = html.parent().expect("a directory");
    let profile = dir.join("chromium-profile");
    // The DOM Chromium built: the cells are table cells and the failure text stayed text.
    let dom = headless(browser, &profile, &html, &["--dump-dom".to_string()])?;
    let dom = String::from_utf8_lossy(&dom.stdout);
    for want in [
        &format!(
            "data-kernel=\"{K99}\" data-case=\"ksm::ksm-keeps-protection\" class=\"cell known\""
        ),
        "expected &lt;no message&gt; &amp; \"nothing\"",
        &format!("id=\"bug-{BUG}\""),
    ] {
        check(dom.contains(want), || {
            format!("Chromium's DOM lacks {want:?}:\n{dom}")
        })?;
    }
    check(!dom.contains("<no message>"), || {
        "Chromium parsed failure text as markup".into()
    })?;

    screenshot(browser, &profile, &html, &dir.join("matrix.png"))?;
    Ok(Completion::Completed)
}
