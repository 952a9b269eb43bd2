//! What the guest kernel said on the console that means it went wrong: a panic, an Oops, a
//! BUG or a WARNING. Each is reported with the console lines around it.

/// Console line markers and what they mean, most severe first.
const MARKERS: &[(&str, &str)] = &[
    ("Kernel panic - not syncing", "kernel panic"),
    ("BUG:", "kernel BUG"),
    ("Oops:", "kernel Oops"),
    ("Oops -", "kernel Oops"),
    (
        "general protection fault",
        "kernel general protection fault",
    ),
    ("WARNING: CPU:", "kernel WARNING"),
    ("------------[ cut here ]------------", "kernel WARNING"),
];

/// One problem found on the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelProblem {
    pub kind: &'static str,
    /// 1-based line of the console log.
    pub line: usize,
    /// The lines around it.
    pub excerpt: String,
}

/// Every problem, one per marker line (a WARNING's "cut here" and "WARNING: CPU:" lines are
/// one problem: the second within a few lines of the first is not counted again).
pub fn scan(console: &str) -> Vec<KernelProblem> {
    let lines: Vec<&str> = console.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut out: Vec<KernelProblem> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(&(_, kind)) = MARKERS.iter().find(|(m, _)| line.contains(m)) else {
            continue;
        };
        if out
            .last()
            .is_some_and(|p| p.kind == kind && i + 1 - p.line < 5)
        {
            continue;
        }
        out.push(KernelProblem {
            kind,
            line: i + 1,
            excerpt: excerpt(&lines, i, 3, 25),
        });
    }
    out
}

/// Lines `before` above and `after` below line `at` (0-based), numbered.
pub fn excerpt(lines: &[&str], at: usize, before: usize, after: usize) -> String {
    let start = at.saturating_sub(before);
    let end = (at + after + 1).min(lines.len());
    lines[start..end]
        .iter()
        .enumerate()
        .map(|(k, l)| format!("  {:>5} | {l}", start + k + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The console's last `n` lines, numbered.
pub fn tail(console: &str, n: usize) -> String {
    let lines: Vec<&str> = console.lines().map(|l| l.trim_end_matches('\r')).collect();
    if lines.is_empty() {
        return "  (the console is empty)".into();
    }
    let at = lines.len() - 1;
    excerpt(&lines, at, n.saturating_sub(1), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_panics_oopses_and_warnings_with_context() {
        let log = "boot\nok 1 a\n------------[ cut here ]------------\nWARNING: CPU: 1 PID: 7 at mm/x.c:1 f+0x1\nCall Trace:\nBUG: unable to handle page fault\nOops: 0002 [#1] SMP\nKernel panic - not syncing: Fatal exception\n";
        let p = scan(log);
        let kinds: Vec<&str> = p.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            vec![
                "kernel WARNING",
                "kernel BUG",
                "kernel Oops",
                "kernel panic"
            ]
        );
        assert_eq!(p[0].line, 3);
        assert!(
            p[0].excerpt.contains("|  WARNING: CPU: 1")
                || p[0].excerpt.contains("| WARNING: CPU: 1"),
            "{}",
            p[0].excerpt
        );
        assert!(scan("KTAP version 1\nok 1 fine\n").is_empty());
    }

    #[test]
    fn tail_numbers_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "      2 | b\n      3 | c");
        assert!(tail("", 3).contains("empty"));
    }
}
