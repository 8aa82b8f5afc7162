//! `GET /v1/feed`: what the rules decide, live, as server-sent events: one
//! `activity` event per commit (or per batch from one source evaluated
//! together) with each rule's targets, a `lagged` event with a count when
//! this watcher fell behind and skipped some. It ends when the service
//! stops. Keys are the application's data, so the feed asks the same
//! token as cache reads (or the read token).

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::ApiState;

/// `GET /v1/feed`.
pub(crate) async fn feed(
    State(api): ApiState,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = api.service.invalidator.watch();
    let stopping = api.stopping.clone();
    let events = futures::stream::unfold(
        (receiver, stopping),
        |(mut receiver, mut stopping)| async move {
            if *stopping.borrow() {
                return None;
            }
            let event = tokio::select! {
                received = receiver.recv() => match received {
                    Ok(activity) => Event::default()
                        .event("activity")
                        .json_data(&*activity)
                        .unwrap_or_else(|e| Event::default().event("error").data(e.to_string())),
                    Err(RecvError::Lagged(skipped)) => {
                        Event::default().event("lagged").data(skipped.to_string())
                    }
                    Err(RecvError::Closed) => return None,
                },
                // The service stops: so does the feed, so that stopping
                // does not wait on a watcher.
                _ = stopping.changed() => return None,
            };
            Some((Ok(event), (receiver, stopping)))
        },
    );
    Sse::new(events).keep_alive(KeepAlive::default())
}
