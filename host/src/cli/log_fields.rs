//! [`QuotedFields`]: how the human log format writes an event's fields.
//!
//! `tracing`'s default writes `field=value` with text values as they are,
//! so a value holding a space and `name=...` reads as two fields: a rule
//! whose version is `1.0 rule=other` would show as another rule. Here
//! every text value is quoted and escaped (`version="1.0 rule=other"`),
//! while numbers and booleans stay bare and the message stays as written.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// Formats fields as `name="text"` or `name=42`, separated by spaces.
pub(crate) struct QuotedFields;

impl<'w> FormatFields<'w> for QuotedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = Quoting {
            writer,
            result: Ok(()),
            first: true,
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes one event's fields, remembering the first error.
struct Quoting<'w> {
    writer: Writer<'w>,
    result: fmt::Result,
    first: bool,
}

impl Quoting<'_> {
    /// Writes `name=value`, or the bare value for the message, after a
    /// space unless it is the first.
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = if field.name() == "message" {
            write!(self.writer, "{separator}{value}")
        } else {
            write!(self.writer, "{separator}{}={value}", field.name())
        };
    }
}

impl Visit for Quoting<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, format_args!("{value:?}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.write(field, format_args!("{value:?}"));
        } else {
            // A `%` field arrives here as its `Display` text: quoted too.
            let text = format!("{value:?}");
            self.write(field, format_args!("{text:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let text = value.to_string();
        self.write(field, format_args!("{text:?}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write(field, format_args!("{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(field, format_args!("{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.write(field, format_args!("{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.write(field, format_args!("{value}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What one event looks like in the human format with these fields.
    fn line(emit: impl FnOnce()) -> String {
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Writer2(sink.clone()))
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .fmt_fields(QuotedFields)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        String::from_utf8(out.lock().unwrap().clone()).unwrap()
    }

    struct Writer2(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Writer2 {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn text_values_are_quoted_so_that_they_cannot_forge_fields() {
        let version = "1.0 rule=forged";
        let got = line(|| tracing::info!(rule = "evil", %version, n = 3, ok = true, "rule loaded"));
        assert_eq!(
            got.trim(),
            r#"INFO rule loaded rule="evil" version="1.0 rule=forged" n=3 ok=true"#
        );
        let got = line(|| tracing::warn!(path = %"a\"b\nc", "x"));
        assert!(got.contains(r#"path="a\"b\nc""#), "{got}");
    }
}
