//! How durations are written in configuration: as text with a unit
//! (`250ms`, `30s`, `10m`, `1h 30m`), parsed and printed by `humantime`.
//! [`required`] is for plain durations; [`optional`] for timers that
//! `never` (or a zero duration) switches off. A bare number is refused
//! with a message saying what to write, since `5` could mean seconds or
//! milliseconds.

use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;

/// The word that switches an optional timer off.
const NEVER: &str = "never";

/// What a duration is expected to look like, for error messages.
const EXPECTED: &str = "a duration with its unit, such as `250ms`, `30s` or `10m`";

/// A plain duration: `#[serde(with = "crate::duration::required")]`.
pub(crate) mod required {
    use super::*;

    /// Writes humantime text, such as `1m 30s`.
    pub(crate) fn serialize<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*d))
    }

    /// Reads a duration with its unit.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        // Only an optional duration reads as `None`.
        let read = deserializer.deserialize_any(Text { optional: false })?;
        Ok(read.unwrap_or_default())
    }
}

/// A timer that can be switched off:
/// `#[serde(with = "crate::duration::optional")]`.
pub(crate) mod optional {
    use super::*;

    /// Writes `never` for `None`, else humantime text.
    pub(crate) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => serializer.collect_str(&humantime::format_duration(*d)),
            None => serializer.serialize_str(NEVER),
        }
    }

    /// Reads `never`, `0s` or a duration with its unit; `never` and zero
    /// are `None`.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        deserializer.deserialize_any(Text { optional: true })
    }
}

/// Reads a duration; `None` for `never` or zero when it is optional.
struct Text {
    optional: bool,
}

impl Text {
    fn or_never(&self) -> &'static str {
        if self.optional { ", or `never`" } else { "" }
    }
}

impl Visitor<'_> for Text {
    type Value = Option<Duration>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{EXPECTED}{}", self.or_never())
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        if self.optional && text.trim() == NEVER {
            return Ok(None);
        }
        let d = humantime::parse_duration(text).map_err(|e| {
            E::custom(format!(
                "`{text}` is not a duration ({e}): give {EXPECTED}{}",
                self.or_never()
            ))
        })?;
        Ok(if self.optional && d.is_zero() {
            None
        } else {
            Some(d)
        })
    }

    // Zero is zero in every unit, so a bare 0 is accepted; any other bare
    // number is ambiguous.
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        match n {
            0 if self.optional => Ok(None),
            0 => Ok(Some(Duration::ZERO)),
            n => Err(E::custom(format!(
                "`{n}` has no unit: write `{n}s` or `{n}ms`{}",
                self.or_never()
            ))),
        }
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        match u64::try_from(n) {
            Ok(n) => self.visit_u64(n),
            Err(_) => Err(E::custom(format!(
                "`{n}` is not a duration: give {EXPECTED}"
            ))),
        }
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
        Err(E::custom(format!("`{n}` has no unit: give {EXPECTED}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
    struct Timers {
        #[serde(with = "super::optional", default)]
        every: Option<Duration>,
        #[serde(with = "super::required", default)]
        wait: Duration,
    }

    fn read(text: &str) -> Result<Timers, String> {
        toml::from_str::<Timers>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn never_and_zero_switch_a_timer_off_and_units_are_read() {
        assert_eq!(read("every = \"never\"").unwrap().every, None);
        assert_eq!(read("every = \"0s\"").unwrap().every, None);
        assert_eq!(read("every = 0").unwrap().every, None);
        assert_eq!(
            read("every = \"1m 30s\"").unwrap().every,
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            read("wait = \"250ms\"").unwrap().wait,
            Duration::from_millis(250)
        );
        assert_eq!(read("wait = 0").unwrap().wait, Duration::ZERO);
    }

    #[test]
    fn a_bad_duration_is_named_with_what_to_write() {
        let err = read("every = \"ten\"").unwrap_err();
        assert!(err.contains("`ten` is not a duration"), "{err}");
        let err = read("wait = 10").unwrap_err();
        assert!(
            err.contains("`10` has no unit: write `10s` or `10ms`"),
            "{err}"
        );
        let err = read("wait = \"never\"").unwrap_err();
        assert!(err.contains("`never` is not a duration"), "{err}");
    }

    #[test]
    fn both_kinds_survive_a_round_trip() {
        for every in [None, Some(Duration::from_millis(1500))] {
            let timers = Timers {
                every,
                wait: Duration::from_millis(2250),
            };
            let text = toml::to_string(&timers).unwrap();
            assert_eq!(toml::from_str::<Timers>(&text).unwrap(), timers, "{text}");
        }
    }
}
