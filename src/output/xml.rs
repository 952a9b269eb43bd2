//! Escaping for XML and HTML output. Trial messages and stderr can hold anything (`<`, quotes,
//! control bytes from a crashed process), and one bad character makes a whole JUnit file
//! unreadable to CI, so every string written goes through here.

/// Text content: `&`, `<`, `>` escaped; characters XML 1.0 forbids replaced by U+FFFD.
pub fn text(s: &str) -> String {
    escape(s, false)
}

/// An attribute value in double quotes: also quotes, and line breaks and tabs as character
/// references so that parsers keep them (attribute normalisation would turn them into spaces).
pub fn attr(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\'' if attribute => out.push_str("&apos;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\r' if attribute => out.push_str("&#13;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if allowed(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// XML 1.0 `Char`, less the tab/newline/return handled by the caller.
fn allowed(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("a < b & c > d", "a &lt; b &amp; c &gt; d")]
    #[case("say \"hi\"\n", "say \"hi\"\n")]
    #[case("nul\0bell\x07", "nul\u{FFFD}bell\u{FFFD}")]
    fn escapes_text(#[case] input: &str, #[case] want: &str) {
        assert_eq!(text(input), want);
    }

    #[rstest]
    #[case("step 3 `write`:\n  x", "step 3 `write`:&#10;  x")]
    #[case("a\"b'c<d>", "a&quot;b&apos;c&lt;d&gt;")]
    #[case("\u{FFFE}", "\u{FFFD}")]
    fn escapes_attributes(#[case] input: &str, #[case] want: &str) {
        assert_eq!(attr(input), want);
    }
}
