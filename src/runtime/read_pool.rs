//! The pages' connections: a few connections of the server's DuckDB instance, so a slow page
//! never queues the others (nor a promotion, which keeps the API's own connection), each read
//! interrupted once it passes `serve.page_timeout_secs`.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use duckdb::Connection;

use super::error::RuntimeError;
use crate::query::Watchdog;

pub struct ReadPool {
    idle: Mutex<Vec<Connection>>,
    returned: Condvar,
    timeout: Duration,
}

impl ReadPool {
    /// `size` connections cloned from `conn` (at least one).
    pub fn new(conn: &Connection, size: usize, timeout: Duration) -> Result<Self, duckdb::Error> {
        let idle = (0..size.max(1))
            .map(|_| conn.try_clone())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            idle: Mutex::new(idle),
            returned: Condvar::new(),
            timeout,
        })
    }

    /// Runs `f` on a free connection (waiting for one: each read is bounded, so the wait is),
    /// interrupted after the timeout (blocking: call it off the executor).
    pub fn read<T, E>(&self, f: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, RuntimeError>
    where
        RuntimeError: From<E>,
    {
        let conn = self.take()?;
        let watchdog = Watchdog::start(conn.interrupt_handle(), self.timeout);
        let result = f(&conn);
        let interrupted = watchdog.finish();
        self.give_back(conn);
        match result {
            Err(_) if interrupted => Err(RuntimeError::ReadTimeout(self.timeout)),
            other => Ok(other?),
        }
    }

    fn take(&self) -> Result<Connection, RuntimeError> {
        let poisoned = |_| RuntimeError::Poisoned("the pages' connections");
        let mut idle = self.idle.lock().map_err(poisoned)?;
        loop {
            if let Some(conn) = idle.pop() {
                return Ok(conn);
            }
            idle = self.returned.wait(idle).map_err(poisoned)?;
        }
    }

    fn give_back(&self, conn: Connection) {
        // A poisoned list only means a panic elsewhere while pushing or popping.
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.push(conn);
        self.returned.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_slow_read_is_interrupted_and_another_runs_beside_it() {
        let conn = Connection::open_in_memory().expect("duckdb");
        let timeout = Duration::from_secs(2);
        let pool = Arc::new(ReadPool::new(&conn, 2, timeout).expect("pool"));
        let slow = std::thread::spawn({
            let pool = pool.clone();
            move || {
                pool.read(|c| {
                    c.query_row(
                        "SELECT count(*) FROM range(100000000000) r(a) WHERE a % 7 = 3",
                        [],
                        |r| r.get::<_, i64>(0),
                    )
                })
            }
        });
        std::thread::sleep(Duration::from_millis(50));
        let quick = pool.read(|c| c.query_row("SELECT 42", [], |r| r.get::<_, i64>(0)));
        assert_eq!(quick.expect("quick read"), 42);
        if slow.is_finished() {
            panic!(
                "the quick read waited for the slow one: {:?}",
                slow.join().expect("join")
            );
        }
        match slow.join().expect("join") {
            Err(RuntimeError::ReadTimeout(t)) => assert_eq!(t, timeout),
            other => panic!("expected a read timeout, got {other:?}"),
        }
        // The interrupted connection is back in the pool and works.
        for _ in 0..2 {
            assert_eq!(
                pool.read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
                    .expect("read"),
                1
            );
        }
    }
}
