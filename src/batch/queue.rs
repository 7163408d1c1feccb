//! A work queue on Redis Streams: `enqueue` adds each item once; workers read it through one
//! consumer group, so each message goes to one worker, and a worker's message stays pending
//! until it acknowledges it. A worker keeps its message by claiming it again every third of the
//! lease (a heartbeat); one killed stops, and after the lease another worker claims the message
//! (`XAUTOCLAIM`). Each item's tries are counted; past the most allowed it is failed with its
//! last reason. "Done" is a hash set once per item, so if two workers ever finish one item only
//! the first counts it.
//!
//! Keys: `NAME` (the stream), `NAME:items` (id to item), `NAME:tries`, `NAME:errors` (last
//! reason), `NAME:done` (id to worker), `NAME:failed` (id to reason).

use std::time::Duration;

use crate::batch::resp::{Connection, QueueUrl, Reply};
use crate::batch::Item;

const GROUP: &str = "subtitle";

type Io<T> = std::io::Result<T>;

fn key(url: &QueueUrl, what: &str) -> String {
    format!("{}:{what}", url.name)
}

fn connect(url: &QueueUrl) -> Io<Connection> {
    Connection::open(&url.addr).map_err(|e| std::io::Error::new(e.kind(), format!("{url}: {e}")))
}

fn ensure_group(conn: &mut Connection, url: &QueueUrl) -> Io<()> {
    match conn.call(&["XGROUP", "CREATE", &url.name, GROUP, "0", "MKSTREAM"])? {
        Reply::Error(e) if !e.starts_with("BUSYGROUP") => Err(std::io::Error::other(format!("{url}: {e}"))),
        _ => Ok(()),
    }
}

/// Adds `items` not queued before; returns how many were added.
pub fn enqueue(url: &QueueUrl, items: &[Item]) -> Io<usize> {
    let mut conn = connect(url)?;
    ensure_group(&mut conn, url)?;
    // One script: an item is in the hash exactly when it was added to the stream.
    const ADD: &str = "if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 1 then \
        redis.call('XADD', KEYS[1], '*', 'id', ARGV[1]) return 1 end return 0";
    let mut added = 0;
    for item in items {
        let json = serde_json::to_string(item).map_err(std::io::Error::other)?;
        let r = conn.ok(&["EVAL", ADD, "2", &url.name, &key(url, "items"), &item.id, &json])?;
        added += r.int().unwrap_or(0) as usize;
    }
    Ok(added)
}

/// What a queue holds: items, done, failed (the rest are pending).
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub ids: Vec<String>,
    pub done: usize,
    pub failed: usize,
}

pub fn counts(url: &QueueUrl) -> Io<Counts> {
    let mut conn = connect(url)?;
    let ids = conn.ok(&["HKEYS", &key(url, "items")])?.items().iter().filter_map(Reply::text).collect();
    let len = |conn: &mut Connection, what: &str| -> Io<usize> {
        Ok(conn.ok(&["HLEN", &key(url, what)])?.int().unwrap_or(0) as usize)
    };
    Ok(Counts { ids, done: len(&mut conn, "done")?, failed: len(&mut conn, "failed")? })
}

/// An item handed to this worker, until it is finished.
#[derive(Debug, Clone)]
pub struct Lease {
    pub message: String,
    pub item: Item,
    /// The try this is (1 for the first).
    pub attempt: u32,
}

/// What [`Worker::take`] got.
pub enum Taken {
    Item(Lease),
    /// Past its tries: failed with this reason, not to run.
    Exhausted(Lease, String),
    /// No message left, and none pending with any worker.
    Drained,
}

/// One worker's place in the consumer group.
pub struct Worker {
    url: QueueUrl,
    conn: Connection,
    consumer: String,
    lease: Duration,
    max_tries: u32,
}

impl Worker {
    pub fn join(url: &QueueUrl, consumer: &str, lease: Duration, max_tries: u32) -> Io<Worker> {
        let mut conn = connect(url)?;
        ensure_group(&mut conn, url)?;
        Ok(Worker { url: url.clone(), conn, consumer: consumer.to_string(), lease, max_tries })
    }

    /// The next message: one whose worker stopped renewing it, else a new one (waiting up to a
    /// second for one), else `Drained` when nothing is pending with anyone.
    pub fn take(&mut self) -> Io<Taken> {
        let lease_ms = self.lease.as_millis().to_string();
        loop {
            let claimed =
                self.conn.ok(&["XAUTOCLAIM", &self.url.name, GROUP, &self.consumer, &lease_ms, "0-0", "COUNT", "1"])?;
            let mut entry = claimed.items().get(1).and_then(|e| e.items().first()).cloned();
            if entry.is_none() {
                let read = self.conn.ok(&[
                    "XREADGROUP",
                    "GROUP",
                    GROUP,
                    &self.consumer,
                    "COUNT",
                    "1",
                    "BLOCK",
                    "1000",
                    "STREAMS",
                    &self.url.name,
                    ">",
                ])?;
                entry = read.items().first().and_then(|s| s.items().get(1)).and_then(|e| e.items().first()).cloned();
            }
            match entry {
                Some(e) => {
                    if let Some(taken) = self.lease_of(&e)? {
                        return Ok(taken);
                    }
                }
                None => {
                    let pending = self.conn.ok(&["XPENDING", &self.url.name, GROUP])?;
                    if pending.items().first().and_then(Reply::int).unwrap_or(0) == 0 {
                        return Ok(Taken::Drained);
                    }
                    // Another worker holds some: it may die, and then its item comes here.
                }
            }
        }
    }

    /// The lease of a stream entry `[message id, [field, value, ...]]`; `None` for one to pass
    /// over (already done, or its item gone).
    fn lease_of(&mut self, entry: &Reply) -> Io<Option<Taken>> {
        let Some(message) = entry.items().first().and_then(Reply::text) else { return Ok(None) };
        let fields = entry.items().get(1).map(Reply::items).unwrap_or_default();
        let id = fields.chunks(2).find(|kv| kv[0].text().as_deref() == Some("id")).and_then(|kv| kv.get(1)?.text());
        let item = match &id {
            Some(id) => self.conn.ok(&["HGET", &key(&self.url, "items"), id])?.text(),
            None => None,
        };
        let item: Option<Item> = item.and_then(|j| serde_json::from_str(&j).ok());
        let Some(item) = item else {
            self.ack(&message)?;
            return Ok(None);
        };
        if self.conn.ok(&["HEXISTS", &key(&self.url, "done"), &item.id])?.int() == Some(1) {
            self.ack(&message)?;
            return Ok(None);
        }
        let attempt = self.conn.ok(&["HINCRBY", &key(&self.url, "tries"), &item.id, "1"])?.int().unwrap_or(1) as u32;
        let lease = Lease { message, item, attempt };
        if attempt > self.max_tries {
            let last = self.conn.ok(&["HGET", &key(&self.url, "errors"), &lease.item.id])?.text();
            let reason = match last {
                Some(e) => format!("failed {} times; last: {e}", attempt - 1),
                None => format!("a worker died on it {} times", attempt - 1),
            };
            return Ok(Some(Taken::Exhausted(lease, reason)));
        }
        Ok(Some(Taken::Item(lease)))
    }

    fn ack(&mut self, message: &str) -> Io<()> {
        self.conn.ok(&["XACK", &self.url.name, GROUP, message]).map(|_| ())
    }

    /// A heartbeat for `message` on its own connection: renews the lease every third of it
    /// until `stop` is dropped or sends.
    pub fn heartbeat(&self, message: &str, stop: crossbeam_channel::Receiver<()>) -> Io<std::thread::JoinHandle<()>> {
        let mut conn = connect(&self.url)?;
        let (name, consumer, message, every) =
            (self.url.name.clone(), self.consumer.clone(), message.to_string(), self.lease / 3);
        Ok(std::thread::spawn(move || {
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
                if let Err(e) = conn.ok(&["XCLAIM", &name, GROUP, &consumer, "0", &message, "JUSTID"]) {
                    tracing::warn!("queue heartbeat: {e}");
                }
            }
        }))
    }

    /// Marks `lease` done by this worker and acknowledges it: true if this worker was the first
    /// to finish the item.
    pub fn done(&mut self, lease: &Lease) -> Io<bool> {
        const DONE: &str = "local first = redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3]) \
            redis.call('XACK', KEYS[1], ARGV[4], ARGV[1]) return first";
        let r = self.conn.ok(&[
            "EVAL",
            DONE,
            "2",
            &self.url.name,
            &key(&self.url, "done"),
            &lease.message,
            &lease.item.id,
            &self.consumer,
            GROUP,
        ])?;
        Ok(r.int() == Some(1))
    }

    /// Records `reason` for `lease`: failed for good when `last` (or past its tries), else
    /// queued again for another try.
    pub fn failed(&mut self, lease: &Lease, reason: &str, last: bool) -> Io<()> {
        const FAIL: &str = "redis.call('HSET', KEYS[3], ARGV[2], ARGV[3]) \
            if ARGV[5] == '1' then redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) \
            else redis.call('XADD', KEYS[1], '*', 'id', ARGV[2]) end \
            redis.call('XACK', KEYS[1], ARGV[4], ARGV[1]) return 1";
        let last = if last || lease.attempt >= self.max_tries { "1" } else { "0" };
        self.conn
            .ok(&[
                "EVAL",
                FAIL,
                "3",
                &self.url.name,
                &key(&self.url, "failed"),
                &key(&self.url, "errors"),
                &lease.message,
                &lease.item.id,
                reason,
                GROUP,
                last,
            ])
            .map(|_| ())
    }
}
