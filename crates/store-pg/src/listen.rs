//! Change notices across nodes: each write transaction sends `pg_notify(channel,
//! '<account>:<modseq>')` for every journal entry it adds; PostgreSQL delivers them at
//! commit, in commit order, to every listening session. Each [`crate::PgStore`] keeps one
//! dedicated LISTEN connection and republishes what arrives on a broadcast channel, so a
//! store on node B sees changes committed through node A.
//!
//! Per account, notices are passed on only when their modseq is above the last one
//! passed on, so subscribers see strictly increasing modseqs even when a reconnect's
//! catch-up and a late delivery overlap. After a reconnect, an account whose
//! `highest_modseq` moved while the listener was away gets one notice carrying the new
//! value (subscribers re-read the journal from their own last modseq anyway).

use crate::error::describe;
use futures_util::StreamExt;
use postern_store::{ChangeNotice, PrincipalId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, oneshot, watch};
use tokio_postgres::AsyncMessage;

/// How often an idle LISTEN connection is checked (a half-open TCP connection would
/// otherwise go unnoticed, and notices with it).
const PING_EVERY: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

#[derive(Default)]
struct State {
    /// The last modseq passed on per account.
    seen: HashMap<i64, u64>,
    /// Whether the LISTEN connection is up (writers wait for their own notices only then).
    connected: bool,
}

/// What the listener has seen, shared with writers and subscribers.
pub(crate) struct Notices {
    state: Mutex<State>,
    tx: broadcast::Sender<ChangeNotice>,
    /// Bumped whenever `state` changes, to wake writers waiting for their notices.
    version: watch::Sender<u64>,
}

impl Notices {
    pub(crate) fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        let (version, _) = watch::channel(0);
        Notices {
            state: Mutex::new(State::default()),
            tx,
            version,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a map of counters: it stays usable after a panic elsewhere.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<ChangeNotice> {
        self.tx.subscribe()
    }

    /// Passes a notice on unless one at or above this modseq already was.
    fn emit(&self, account: i64, modseq: u64) {
        let mut s = self.lock();
        let last = s.seen.entry(account).or_insert(0);
        if modseq > *last {
            *last = modseq;
            // Sent under the lock, so concurrent emitters cannot reorder an account's notices.
            let _ = self.tx.send(ChangeNotice {
                account: PrincipalId(account),
                modseq,
            });
            drop(s);
            self.bump();
        }
    }

    /// Records where accounts stand without announcing anything (first connection).
    fn baseline(&self, rows: &[(i64, u64)]) {
        let mut s = self.lock();
        for &(account, modseq) in rows {
            let last = s.seen.entry(account).or_insert(0);
            *last = (*last).max(modseq);
        }
    }

    fn set_connected(&self, up: bool) {
        self.lock().connected = up;
        self.bump();
    }

    /// Waits until the listener has passed on every `(account, modseq)`, so that when a
    /// write returns, this store's subscribers already have its notices (as with the
    /// embedded backend). Returns at once while the listener is down, and after
    /// `timeout` at most: the write is committed either way.
    pub(crate) async fn wait_for(&self, targets: &[(i64, u64)], timeout: Duration) {
        if targets.is_empty() {
            return;
        }
        let mut rx = self.version.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let s = self.lock();
                if !s.connected
                    || targets
                        .iter()
                        .all(|(a, m)| s.seen.get(a).copied().unwrap_or(0) >= *m)
                {
                    return;
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::warn!(
                        "change notices of a committed write did not come back within {timeout:?}"
                    );
                    return;
                }
            }
        }
    }
}

/// `<account>:<modseq>`, both decimal.
pub(crate) fn payload(n: &ChangeNotice) -> String {
    format!("{}:{}", n.account.0, n.modseq)
}

fn parse_payload(p: &str) -> Option<(i64, u64)> {
    let (a, m) = p.split_once(':')?;
    Some((a.parse().ok()?, m.parse().ok()?))
}

/// Aborts the connection task when the session ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The listener task: one LISTEN session after another, with backoff between them.
/// `ready` learns how the first session started; if it failed, the task ends there
/// (the caller's `connect` reports the error).
pub(crate) async fn run(
    cfg: tokio_postgres::Config,
    channel: String,
    notices: Arc<Notices>,
    ready: oneshot::Sender<Result<(), String>>,
) {
    let mut ready = Some(ready);
    let mut backoff = BACKOFF_MIN;
    loop {
        let first = ready.is_some();
        let started = tokio::time::Instant::now();
        let err = session(&cfg, &channel, &notices, first, &mut ready).await;
        notices.set_connected(false);
        if let Some(r) = ready.take() {
            let _ = r.send(Err(err));
            return;
        }
        if started.elapsed() > BACKOFF_MAX {
            backoff = BACKOFF_MIN;
        }
        tracing::warn!("change listener lost its connection ({err}); reconnecting in {backoff:?}");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One LISTEN connection, until it fails; returns why it ended.
async fn session(
    cfg: &tokio_postgres::Config,
    channel: &str,
    notices: &Arc<Notices>,
    first: bool,
    ready: &mut Option<oneshot::Sender<Result<(), String>>>,
) -> String {
    // TLS: tokio-postgres-rustls (ring provider) replaces NoTls here and in the pool
    // once connections leave the loopback.
    let (client, mut conn) = match cfg.connect(tokio_postgres::NoTls).await {
        Ok(c) => c,
        Err(e) => return format!("cannot connect: {}", describe(&e)),
    };
    let (closed_tx, mut closed_rx) = oneshot::channel::<String>();
    let n2 = notices.clone();
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        let why = loop {
            match messages.next().await {
                Some(Ok(AsyncMessage::Notification(n))) => match parse_payload(n.payload()) {
                    Some((account, modseq)) => n2.emit(account, modseq),
                    None => tracing::warn!("ignoring a malformed change notice {:?}", n.payload()),
                },
                Some(Ok(_)) => {}
                Some(Err(e)) => break describe(&e),
                None => break "connection closed".to_string(),
            }
        };
        let _ = closed_tx.send(why);
    }));

    // The channel name is built from the validated schema name only.
    if let Err(e) = client.batch_execute(&format!("LISTEN \"{channel}\"")).await {
        return format!("LISTEN failed: {}", describe(&e));
    }
    // After LISTEN, so nothing committed from here on is missed: what committed before
    // shows in this snapshot, what commits after arrives as a notification (both, at
    // worst, and the modseq filter drops the repeat).
    let rows = match client
        .query(
            "SELECT id, highest_modseq FROM principals WHERE highest_modseq > 0",
            &[],
        )
        .await
    {
        Ok(rows) => rows,
        Err(e) => return format!("cannot read modseqs: {}", describe(&e)),
    };
    let mut heads = Vec::with_capacity(rows.len());
    for r in &rows {
        match (r.try_get::<_, i64>(0), r.try_get::<_, i64>(1)) {
            (Ok(a), Ok(m)) => heads.push((a, m.max(0) as u64)),
            _ => return "principals row does not decode".to_string(),
        }
    }
    if first {
        notices.baseline(&heads);
    } else {
        // Catch up on what committed while the listener was away.
        for (a, m) in heads {
            notices.emit(a, m);
        }
    }
    notices.set_connected(true);
    if let Some(r) = ready.take() {
        let _ = r.send(Ok(()));
    }
    loop {
        tokio::select! {
            why = &mut closed_rx => {
                return why.unwrap_or_else(|_| "connection task ended".to_string());
            }
            _ = tokio::time::sleep(PING_EVERY) => {
                match tokio::time::timeout(PING_TIMEOUT, client.simple_query("SELECT 1")).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return format!("ping failed: {}", describe(&e)),
                    Err(_) => return "ping timed out".to_string(),
                }
            }
        }
    }
}
