//! [`StreamConfig`]: the `[stream]` section, as the stream source takes
//! it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::text_setting as text;

/// `[stream]`: the Redis Streams source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// The stream's key. Absent: no stream source. Default absent.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional"
    )]
    pub name: Option<String>,
    /// The consumer group shared by every `serve` process. Default
    /// `invalidator`.
    #[serde(deserialize_with = "text::required")]
    pub group: String,
    /// This process's name in the group. Default `HOSTNAME-PID`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional"
    )]
    pub consumer: Option<String>,
    /// The Redis holding the stream. Default: the `redis` setting.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional"
    )]
    pub redis: Option<String>,
    /// Entries another consumer has held unacknowledged this long are
    /// claimed (its process is taken for dead). Default `30s`.
    #[serde(with = "crate::duration::required")]
    pub claim_idle: Duration,
    /// Deliveries after which an entry that is never acknowledged goes to
    /// the dead-letter stream. Default 5.
    pub max_attempts: u64,
    /// The dead-letter stream. Default `NAME:dead`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "text::optional"
    )]
    pub dead_letter: Option<String>,
    /// Entries read at a time. Default 256.
    pub read_count: usize,
    /// How long one read waits for new entries. Default `1s`.
    #[serde(with = "crate::duration::required")]
    pub block: Duration,
    /// Entries read and not yet acknowledged, at most: reading pauses at
    /// this bound until the pipeline catches up. Default 10000.
    pub max_in_flight: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            name: None,
            group: "invalidator".to_owned(),
            consumer: None,
            redis: None,
            claim_idle: Duration::from_secs(30),
            max_attempts: 5,
            dead_letter: None,
            read_count: 256,
            block: Duration::from_secs(1),
            max_in_flight: 10_000,
        }
    }
}

impl StreamConfig {
    /// This process's consumer name: the setting, or `HOSTNAME-PID`.
    pub fn consumer_name(&self) -> String {
        self.consumer.clone().unwrap_or_else(|| {
            let host = gethostname::gethostname().to_string_lossy().into_owned();
            format!("{host}-{}", std::process::id())
        })
    }

    /// The dead-letter stream: the setting, or `NAME:dead`; none without a
    /// stream.
    pub fn dead_letter_stream(&self) -> Option<String> {
        let name = self.name.as_ref()?;
        Some(
            self.dead_letter
                .clone()
                .unwrap_or_else(|| format!("{name}:dead")),
        )
    }
}
