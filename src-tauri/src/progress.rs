//! Forwards a migration's progress and events to one observer (the web
//! view's `tauri::ipc::Channel`), throttled for the eye.
//!
//! The engine updates its progress snapshot on every copied batch, far more
//! often than a person can read; this module sends at most one snapshot per
//! interval, and state changes, warnings and errors at once. It must never
//! poll the engine in a loop or hold migration logic: it only waits on the
//! engine's own `watch` and `broadcast` channels.

use std::time::Duration;

use mongoferry::{Event, Progress};
use tokio::sync::{broadcast, watch};

/// At most this many progress snapshots a second reach the UI.
pub const MAX_UPDATES_PER_SECOND: u32 = 10;

/// Where forwarded values go: the web view's `tauri::ipc::Channel`, or a
/// recorder in tests, which run without a window. `send` returns false
/// once the observer is gone (the window closed or reloaded), which ends
/// the forwarding.
pub trait Sink<T>: Send + 'static {
    fn send(&self, value: T) -> bool;
}

impl<T: serde::Serialize + Clone + Send + 'static> Sink<T> for tauri::ipc::Channel<T>
where
    tauri::ipc::Channel<T>: Send,
{
    fn send(&self, value: T) -> bool {
        tauri::ipc::Channel::send(self, value).is_ok()
    }
}

/// Sends the latest value of `rx` at once, then at most once per
/// `min_interval` while it changes, and a last time when the sender is
/// gone. For progress that has no separate event stream (verification).
pub async fn forward_latest<T: Clone + Send + Sync + 'static>(
    mut rx: watch::Receiver<T>,
    sink: impl Sink<T>,
    min_interval: Duration,
) {
    loop {
        let value = rx.borrow_and_update().clone();
        if !sink.send(value) {
            return;
        }
        tokio::time::sleep(min_interval).await;
        if rx.changed().await.is_err() {
            let last = rx.borrow().clone();
            sink.send(last);
            return;
        }
    }
}

/// Sends the current snapshot at once, then at most one snapshot per
/// `min_interval` while the progress changes, and every other event as it
/// comes. Returns when the sink is gone or the engine's channels close.
pub async fn forward(
    mut progress: watch::Receiver<Progress>,
    mut events: broadcast::Receiver<Event>,
    sink: impl Sink<Event>,
    min_interval: Duration,
) {
    let mut tick = tokio::time::interval(min_interval);
    // A slow observer gets the latest snapshot, not a burst of stale ones.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = true;
    let mut engine_alive = true;
    loop {
        tokio::select! {
            biased;
            received = events.recv(), if engine_alive => match received {
                // Snapshots travel through the watch channel, throttled.
                Ok(Event::Progress(_)) => dirty = true,
                Ok(other) => {
                    // The snapshot first, so the UI never shows a state
                    // change before the figures that led to it.
                    if dirty {
                        dirty = false;
                        let snapshot = progress.borrow_and_update().clone();
                        if !sink.send(Event::Progress(snapshot)) {
                            return;
                        }
                    }
                    if !sink.send(other) {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => dirty = true,
                Err(broadcast::error::RecvError::Closed) => engine_alive = false,
            },
            changed = progress.changed(), if engine_alive => match changed {
                Ok(()) => dirty = true,
                Err(_) => engine_alive = false,
            },
            _ = tick.tick(), if dirty || !engine_alive => {
                // Once the engine is gone, its last snapshot goes out
                // whether or not a change was seen: the closing of one
                // channel can hide the last change of the other.
                dirty = false;
                let snapshot = progress.borrow_and_update().clone();
                if !sink.send(Event::Progress(snapshot)) || !engine_alive {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use mongoferry::State;

    use super::*;

    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<(tokio::time::Instant, Event)>>>);

    impl Sink<Event> for Recorder {
        fn send(&self, event: Event) -> bool {
            self.0
                .lock()
                .map(|mut v| v.push((tokio::time::Instant::now(), event)))
                .is_ok()
        }
    }

    impl Recorder {
        fn events(&self) -> Vec<(tokio::time::Instant, Event)> {
            self.0.lock().map(|v| v.clone()).unwrap_or_default()
        }
    }

    fn progress(events: u64) -> Progress {
        Progress {
            total_events_applied: events,
            ..Progress::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn progress_is_throttled_and_other_events_are_not() {
        let (progress_tx, progress_rx) = watch::channel(progress(0));
        let (events_tx, events_rx) = broadcast::channel(64);
        let sink = Recorder::default();
        let interval = Duration::from_millis(100);
        let task = tokio::spawn(forward(progress_rx, events_rx, sink.clone(), interval));

        // 1,000 updates within one second: 10 per millisecond.
        for n in 1..=1000u64 {
            progress_tx.send_replace(progress(n));
            if n % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        events_tx
            .send(Event::StateChanged {
                from: State::Running,
                to: State::Paused,
            })
            .ok();
        tokio::time::sleep(Duration::from_millis(300)).await;
        task.abort();

        let got = sink.events();
        let snapshots: Vec<_> = got
            .iter()
            .filter_map(|(at, e)| match e {
                Event::Progress(p) => Some((*at, p.total_events_applied)),
                _ => None,
            })
            .collect();
        assert!(
            snapshots.len() <= 13,
            "{} snapshots in 1.3 s: not throttled",
            snapshots.len()
        );
        for pair in snapshots.windows(2) {
            assert!(
                pair[1].0 - pair[0].0 >= interval,
                "two snapshots closer than the interval"
            );
        }
        assert_eq!(
            snapshots.last().map(|s| s.1),
            Some(1000),
            "the last snapshot sent must be the latest"
        );
        let state_changes = got
            .iter()
            .filter(|(_, e)| matches!(e, Event::StateChanged { .. }))
            .count();
        assert_eq!(state_changes, 1, "state changes are forwarded, once");
    }

    #[tokio::test(start_paused = true)]
    async fn ends_when_the_sink_is_gone() {
        struct Gone;
        impl Sink<Event> for Gone {
            fn send(&self, _: Event) -> bool {
                false
            }
        }
        let (_progress_tx, progress_rx) = watch::channel(progress(0));
        let (_events_tx, events_rx) = broadcast::channel(4);
        tokio::time::timeout(
            Duration::from_secs(1),
            forward(progress_rx, events_rx, Gone, Duration::from_millis(100)),
        )
        .await
        .expect("forward returns once the observer is gone");
    }

    #[tokio::test(start_paused = true)]
    async fn sends_the_final_snapshot_when_the_engine_closes() {
        let (progress_tx, progress_rx) = watch::channel(progress(0));
        let (events_tx, events_rx) = broadcast::channel(4);
        let sink = Recorder::default();
        let task = tokio::spawn(forward(
            progress_rx,
            events_rx,
            sink.clone(),
            Duration::from_millis(100),
        ));
        tokio::time::sleep(Duration::from_millis(150)).await;
        progress_tx.send_replace(progress(7));
        drop(progress_tx);
        drop(events_tx);
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("forward ends with the engine")
            .expect("no panic");
        let last = sink.events().last().map(|(_, e)| e.clone());
        assert_eq!(last, Some(Event::Progress(progress(7))));
    }
}
