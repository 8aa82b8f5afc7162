//! Text settings that also take numbers and booleans: an environment
//! value that looks like a number (a token `12345`, a stream `42`)
//! arrives as a number, and means its digits. Used with
//! `#[serde(deserialize_with = "...")]` by every section that has text.

use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Text {
    String(String),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Bool(bool),
}

impl Text {
    fn into_string(self) -> String {
        match self {
            Text::String(s) => s,
            Text::Unsigned(n) => n.to_string(),
            Text::Signed(n) => n.to_string(),
            Text::Float(n) => n.to_string(),
            Text::Bool(b) => b.to_string(),
        }
    }
}

pub(crate) fn required<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Text::deserialize(d).map(Text::into_string)
}

pub(crate) fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<Text>::deserialize(d).map(|t| t.map(Text::into_string))
}
