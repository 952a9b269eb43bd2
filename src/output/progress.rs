//! A one-line progress display on stderr for long runs: `[n/N] P passed, F failed, S skipped
//! last-trial`, rewritten in place with `\r`. Silent when stderr is not a terminal (CI logs,
//! pipes), where a line per update would only be noise.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use super::record::Status;

pub struct Progress {
    total: usize,
    /// Off when stderr is not a terminal.
    enabled: bool,
    state: Mutex<State>,
}

struct State {
    done: usize,
    counts: [usize; 5],
    /// A progress line is on the screen and must be erased before other output.
    shown: bool,
    out: Box<dyn Write + Send>,
}

impl Progress {
    /// On stderr, enabled only when stderr is a terminal.
    pub fn stderr(total: usize) -> Progress {
        Progress::new(
            total,
            std::io::stderr().is_terminal(),
            Box::new(std::io::stderr()),
        )
    }

    pub fn new(total: usize, enabled: bool, out: Box<dyn Write + Send>) -> Progress {
        Progress {
            total,
            enabled,
            state: Mutex::new(State {
                done: 0,
                counts: [0; 5],
                shown: false,
                out,
            }),
        }
    }

    /// Counts a finished trial: erases the progress line, lets `print` write its output (so
    /// that text never lands in the middle of the line), then draws the line again.
    pub fn finished(&self, name: &str, status: Status, print: impl FnOnce()) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.done += 1;
        s.counts[status as usize] += 1;
        if self.enabled && s.shown {
            let _ = s.out.write_all(b"\r\x1b[K");
            let _ = s.out.flush();
            s.shown = false;
        }
        print();
        if self.enabled {
            let text = line(s.done, self.total, &s.counts, name, terminal_width());
            let _ = write!(s.out, "\r{text}\x1b[K");
            let _ = s.out.flush();
            s.shown = true;
        }
    }

    /// Erases the line for good (before the summary).
    pub fn clear(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if self.enabled && s.shown {
            let _ = s.out.write_all(b"\r\x1b[K");
            let _ = s.out.flush();
            s.shown = false;
        }
    }
}

/// The line, cut to `width` columns so that `\r` can always rewrite it (a wrapped line can't be).
pub fn line(done: usize, total: usize, counts: &[usize; 5], current: &str, width: usize) -> String {
    let [pass, fail, skip, xfail, xpass] = *counts;
    let mut text = format!(
        "[{done}/{total}] {} passed, {fail} failed, {skip} skipped",
        pass + xpass
    );
    if xfail > 0 {
        text += &format!(", {xfail} xfail");
    }
    text += "  ";
    text += current;
    let max = width.saturating_sub(1).max(10);
    if text.chars().count() > max {
        text = text.chars().take(max - 1).collect::<String>() + "…";
    }
    text
}

/// Columns of the terminal on stderr; 80 when unknown.
fn terminal_width() -> usize {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we own.
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 {
        ws.ws_col as usize
    } else {
        80
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("sink").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn line_counts_and_fits_the_terminal() {
        assert_eq!(
            line(3, 10, &[1, 1, 1, 0, 0], "wp::a::anon", 80),
            "[3/10] 1 passed, 1 failed, 1 skipped  wp::a::anon"
        );
        assert_eq!(
            line(2, 2, &[0, 0, 0, 1, 1], "x", 80),
            "[2/2] 1 passed, 0 failed, 0 skipped, 1 xfail  x"
        );
        let cut = line(
            3,
            10,
            &[1, 1, 1, 0, 0],
            "wp::a-very-long-case-name::hugetlb-private",
            40,
        );
        assert_eq!(cut.chars().count(), 39);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn rewrites_in_place_on_a_terminal_and_erases_before_output() {
        let sink = Sink::default();
        let p = Progress::new(2, true, Box::new(sink.clone()));
        p.finished("a::b::anon", Status::Pass, || {});
        p.finished("a::c::anon", Status::Fail, || {
            sink.clone().write_all(b"FAIL a::c::anon\n").expect("write")
        });
        p.clear();
        let out = String::from_utf8(sink.0.lock().expect("sink").clone()).expect("utf-8");
        assert!(out.starts_with("\r[1/2] 1 passed, 0 failed, 0 skipped  a::b::anon\x1b[K\r\x1b[KFAIL a::c::anon\n\r[2/2] 1 passed, 1 failed"), "{out:?}");
        assert!(out.ends_with("\r\x1b[K"), "{out:?}");
    }

    #[test]
    fn silent_when_not_a_terminal() {
        let sink = Sink::default();
        let p = Progress::new(1, false, Box::new(sink.clone()));
        let mut printed = false;
        p.finished("a::b::anon", Status::Pass, || printed = true);
        p.clear();
        assert!(printed, "the trial's own output is still printed");
        assert!(sink.0.lock().expect("sink").is_empty());
    }
}
