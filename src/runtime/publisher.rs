//! The one owner of the served snapshot. Every reload, by the pipeline worker after a run or by
//! the API after a promotion, goes through `Publisher::reload`:
//!
//! 1. it takes the next version *before* it reads the database;
//! 2. it reads a whole snapshot (no lock held: a promotion never waits behind a reload or a
//!    training);
//! 3. it is published only if no load that began later has been published meanwhile.
//!
//! A load that began later saw every commit that an earlier one saw, so the rule "newest begun
//! wins" means a reload that started before a promotion committed can never put the old champion
//! back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use duckdb::Connection;

use super::metrics::Metrics;
use super::snapshot::Snapshot;
use crate::config::Settings;

pub struct Publisher {
    current: ArcSwap<Snapshot>,
    /// The version the next load takes: loads are numbered in the order they begin.
    next_version: AtomicU64,
    /// Held only to compare versions and swap, never while reading the database.
    swap: Mutex<()>,
    metrics: Arc<Metrics>,
    /// The served version, for whoever prepares something per snapshot (the pages' caches).
    served: tokio::sync::watch::Sender<u64>,
}

/// A load in progress: its version was taken before it read anything.
#[derive(Debug)]
#[must_use = "a begun load is published or dropped"]
pub struct Ticket {
    version: u64,
}

/// What became of a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publication {
    /// It is served now.
    Published { version: u64 },
    /// A load that began later was published first: this one was dropped.
    Superseded { version: u64, served: u64 },
}

impl Publisher {
    /// Serves `first` (as version 1) and sets the gauges from it.
    pub fn new(mut first: Snapshot, metrics: Arc<Metrics>) -> Self {
        first.version = 1;
        metrics.publish(&first);
        Self {
            current: ArcSwap::from_pointee(first),
            next_version: AtomicU64::new(2),
            swap: Mutex::new(()),
            metrics,
            served: tokio::sync::watch::Sender::new(1),
        }
    }

    /// Follows the served version: changes once per published snapshot.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.served.subscribe()
    }

    /// The snapshot served now (lock-free).
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Reads the database and publishes what it read, unless a newer load was published first.
    pub fn reload(&self, conn: &Connection, settings: &Settings) -> Publication {
        let ticket = self.begin();
        let snapshot = Snapshot::load(conn, settings);
        self.publish(ticket, snapshot)
    }

    /// Takes a version for a load about to read the database.
    pub fn begin(&self) -> Ticket {
        Ticket {
            version: self.next_version.fetch_add(1, Ordering::SeqCst),
        }
    }

    /// Serves `snapshot`, read under `ticket`, unless a load that began later is served already.
    pub fn publish(&self, ticket: Ticket, mut snapshot: Snapshot) -> Publication {
        // A poisoned lock only means a panic elsewhere while swapping; the guard holds no data.
        let _swap = self.swap.lock().unwrap_or_else(|p| p.into_inner());
        let served = self.current.load();
        if served.version > ticket.version {
            tracing::debug!(
                version = ticket.version,
                served = served.version,
                "snapshot superseded by a newer load"
            );
            return Publication::Superseded {
                version: ticket.version,
                served: served.version,
            };
        }
        snapshot.version = ticket.version;
        self.count_champion_change(&served, &snapshot);
        self.current.store(Arc::new(snapshot));
        drop(served);
        self.served.send_replace(ticket.version);
        self.publish_gauges();
        Publication::Published {
            version: ticket.version,
        }
    }

    /// Sets the gauges from the served snapshot (ages grow between reloads, so each scrape
    /// calls this).
    pub fn publish_gauges(&self) {
        self.metrics.publish(&self.current.load());
    }

    fn count_champion_change(&self, before: &Snapshot, after: &Snapshot) {
        let Some(new) = &after.champion else {
            return;
        };
        if before.champion.as_ref().map(|c| c.model_id.as_str()) == Some(new.model_id.as_str()) {
            return;
        }
        let to_floor = after
            .floor
            .as_ref()
            .is_some_and(|f| f.model_id == new.model_id);
        self.metrics
            .coincast_champion_changes_total
            .with_label_values(&[new.family.as_str(), if to_floor { "true" } else { "false" }])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher() -> Publisher {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        Publisher::new(Snapshot::empty("first"), metrics)
    }

    #[test]
    fn a_load_that_began_earlier_never_replaces_a_later_one() {
        let p = publisher();
        let early = p.begin();
        let late = p.begin();
        assert_eq!(
            p.publish(late, Snapshot::empty("late")),
            Publication::Published { version: 3 }
        );
        assert_eq!(
            p.publish(early, Snapshot::empty("early")),
            Publication::Superseded {
                version: 2,
                served: 3
            }
        );
        assert_eq!(p.current().problems, vec!["late".to_string()]);
        assert_eq!(p.current().version, 3);
    }

    #[test]
    fn loads_in_order_are_each_published() {
        let p = publisher();
        for expected in 2..5 {
            let t = p.begin();
            assert_eq!(
                p.publish(t, Snapshot::empty("next")),
                Publication::Published { version: expected }
            );
        }
    }
}
