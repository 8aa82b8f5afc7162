//! [`escape`]: text a rule supplied, made safe to show to people.
//!
//! Rule names, versions, log lines, error messages and targets come from
//! the rule's author, who may not be the operator reading the logs. Shown
//! raw, a newline forges a log line and an escape sequence rewrites the
//! terminal. So every control character, and every invisible character
//! that reorders or hides text (bidirectional overrides, zero-width
//! marks), is shown as an escape (`\n`, `\u{1b}`); everything else,
//! accented letters included, is shown as it is.

use std::borrow::Cow;

/// `text` with control and invisible formatting characters escaped;
/// borrowed when there is nothing to escape, which is almost always.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Whether `c` must not reach a terminal or a log line as it is.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Zero-width and direction marks, bidirectional embeddings,
            // overrides and isolates, line and paragraph separators, and
            // the byte-order mark: they change how the text around them
            // reads without showing themselves.
            '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{feff}'
                // Blank look-alikes that take no visible room: a soft
                // hyphen, the combining grapheme joiner, the Hangul
                // fillers, the Mongolian vowel separator, the Khmer
                // inherent vowels, the braille blank.
                | '\u{ad}'
                | '\u{34f}'
                | '\u{115f}'
                | '\u{1160}'
                | '\u{17b4}'
                | '\u{17b5}'
                | '\u{180b}'..='\u{180f}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{ffa0}'
                // The rest of the format characters (general category Cf).
                | '\u{600}'..='\u{605}'
                | '\u{61c}'
                | '\u{6dd}'
                | '\u{70f}'
                | '\u{890}'..='\u{891}'
                | '\u{8e2}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{110bd}'
                | '\u{110cd}'
                | '\u{13430}'..='\u{1343f}'
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
                | '\u{e0001}'
                | '\u{e0020}'..='\u{e007f}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_invisible_characters_are_escaped() {
        assert_eq!(
            escape("6.6.6\n\x1b[31mFAKE"),
            "6.6.6\\n\\u{1b}[31mFAKE",
            "a newline and an escape sequence"
        );
        assert_eq!(
            escape("a\u{202e}b\u{7f}c\u{9b}"),
            "a\\u{202e}b\\u{7f}c\\u{9b}"
        );
        assert_eq!(escape("tab\there\r"), "tab\\there\\r");
        for invisible in [
            '\u{ad}',
            '\u{34f}',
            '\u{115f}',
            '\u{180e}',
            '\u{3164}',
            '\u{2064}',
            '\u{61c}',
            '\u{e0041}',
            '\u{1d173}',
        ] {
            let text = format!("deal{invisible}ership");
            assert_eq!(
                escape(&text),
                format!("deal\\u{{{:x}}}ership", invisible as u32),
                "U+{:04X}",
                invisible as u32
            );
        }
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        for text in ["turnus_data_7", "Grüße, 日本 é ß", "shop:*:[a-z]\\*", ""] {
            assert!(
                matches!(escape(text), Cow::Borrowed(t) if t == text),
                "{text}"
            );
        }
    }
}
