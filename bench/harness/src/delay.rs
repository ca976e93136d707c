//! A delaying TCP proxy on loopback that puts a network between a function and
//! its upstreams, and the count of sequential round trips read from what it saw
//! (BENCHMARKS.md, "Deployed case").
//!
//! Every byte is held for the one-way delay `rtt / 2` in each direction. The
//! TCP handshake happens in the kernel at loopback speed, so it is modelled:
//! what a client sends on a new connection is held until the connection is
//! `rtt` old (when its SYN-ACK would have arrived), then for the one-way delay.
//! Blocking threads with `std::thread::sleep` keep sub-millisecond precision
//! (tokio's timer has a 1 ms resolution): four threads per connection, a few
//! connections per cold start.
//!
//! Round trips are read per connection from the order in which the client sent
//! and received data: a *flight* is a run of client → server data with no
//! server → client data in between; a round trip is a flight and the server's
//! answer (the server → client data until the client speaks again). A flight
//! the server never answers (a closing alert) is none. The TCP handshake is one
//! more round trip per connection. Across connections, round trips that overlap
//! in time cost one wait, not two, so the count is *sequential*: the largest
//! number of round trips that follow one another without overlapping, i.e. the
//! shortest the caller can have waited, in round trips.
use anyhow::{Context as _, Result};
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A socket idle this long ends its connection (a backstop; the bench's
/// processes live well under a second).
const IDLE_LIMIT: Duration = Duration::from_secs(120);

/// One chunk of data as the client saw it.
#[derive(Clone, Copy, Debug)]
struct Event {
    /// Client → server (else server → client).
    up: bool,
    /// When the client sent it (read by the proxy) or received it (written by the proxy).
    at: Instant,
    /// When a client on a real network would have sent it: not before the
    /// connection is `rtt` old. Equal to `at` for server → client data.
    sent: Instant,
    /// First byte of the chunk (0x16: a TLS handshake record).
    first_byte: u8,
}

/// What one connection carried.
#[derive(Clone, Debug)]
struct Conn {
    upstream: String,
    opened: Instant,
    events: Vec<Event>,
}

/// What every proxy of a run saw, shared by the proxies.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Conn>>>);

impl Log {
    fn open(&self, upstream: &str, opened: Instant) -> usize {
        let Ok(mut conns) = self.0.lock() else {
            return usize::MAX;
        };
        conns.push(Conn {
            upstream: upstream.to_string(),
            opened,
            events: Vec::new(),
        });
        conns.len() - 1
    }

    fn record(&self, conn: usize, event: Event) {
        if let Ok(mut conns) = self.0.lock() {
            if let Some(c) = conns.get_mut(conn) {
                c.events.push(event);
            }
        }
    }

    /// The round trips that started within `[from, to]`.
    pub fn round_trips(&self, rtt: Duration, from: Instant, to: Instant) -> Vec<RoundTrip> {
        let conns = self.0.lock().map(|c| c.clone()).unwrap_or_default();
        let mut out: Vec<RoundTrip> = conns
            .iter()
            .enumerate()
            .flat_map(|(id, c)| conn_round_trips(id, c, rtt))
            .filter(|r| r.start >= from && r.start <= to)
            .collect();
        out.sort_by_key(|r| r.start);
        out
    }
}

/// What a round trip was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The modelled TCP handshake of a new connection.
    Tcp,
    /// The first flight of a connection, when it is a TLS handshake record.
    Tls,
    /// Any other flight (a request).
    Request,
}

/// One round trip on one connection.
#[derive(Clone, Debug)]
pub struct RoundTrip {
    /// Index of the connection in the run (in the order opened).
    pub conn: usize,
    pub upstream: String,
    pub kind: Kind,
    /// When the flight was (virtually) sent.
    pub start: Instant,
    /// When the client had the last byte of the answer.
    pub end: Instant,
}

fn conn_round_trips(id: usize, c: &Conn, rtt: Duration) -> Vec<RoundTrip> {
    let mut out = vec![RoundTrip {
        conn: id,
        upstream: c.upstream.clone(),
        kind: Kind::Tcp,
        start: c.opened,
        end: c.opened + rtt,
    }];
    let mut events = c.events.clone();
    events.sort_by_key(|e| e.at);
    // The flight being answered: its start, its first byte, the answer's last byte.
    let mut open: Option<(Instant, u8, Option<Instant>)> = None;
    let mut flights = 0;
    let mut close = |flight: Option<(Instant, u8, Option<Instant>)>, out: &mut Vec<RoundTrip>| {
        if let Some((start, first, Some(end))) = flight {
            flights += 1;
            let kind = if flights == 1 && first == 0x16 {
                Kind::Tls
            } else {
                Kind::Request
            };
            out.push(RoundTrip {
                conn: id,
                upstream: c.upstream.clone(),
                kind,
                start,
                end,
            });
        }
    };
    for e in events {
        match (e.up, &mut open) {
            // Client data after an answer: the answered flight ends, a new one starts.
            (true, Some((_, _, Some(_)))) => {
                close(open.take(), &mut out);
                open = Some((e.sent, e.first_byte, None));
            }
            (true, Some((_, _, None))) => {}
            (true, None) => open = Some((e.sent, e.first_byte, None)),
            (false, Some((_, _, end))) => *end = Some(e.at),
            // Server data nobody asked for (none in HTTP): not a round trip.
            (false, None) => {}
        }
    }
    close(open.take(), &mut out);
    out
}

/// The largest chain of round trips that follow one another without
/// overlapping (earliest end first gives the largest): indices into `trips`,
/// in order.
pub fn chain(trips: &[RoundTrip]) -> Vec<usize> {
    let mut by_end: Vec<usize> = (0..trips.len()).collect();
    by_end.sort_by_key(|&i| trips[i].end);
    let mut out = Vec::new();
    let mut last_end: Option<Instant> = None;
    for i in by_end {
        if last_end.is_none_or(|end| trips[i].start >= end) {
            out.push(i);
            last_end = Some(trips[i].end);
        }
    }
    out
}

/// The number of sequential round trips: the length of [`chain`].
pub fn sequential(trips: &[RoundTrip]) -> usize {
    chain(trips).len()
}

/// One listening proxy in front of one upstream.
pub struct DelayProxy {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl DelayProxy {
    /// Listens on a free loopback port and forwards each connection to `target`
    /// with `rtt / 2` of delay each way, recording into `log` under `upstream`.
    pub fn start(upstream: &str, target: SocketAddr, rtt: Duration, log: Log) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let upstream = upstream.to_string();
        thread::Builder::new()
            .name(format!("delay-{upstream}"))
            .spawn(move || {
                for client in listener.incoming() {
                    if stopping.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let opened = Instant::now();
                    let id = log.open(&upstream, opened);
                    let log = log.clone();
                    let _ = thread::Builder::new()
                        .name("delay-conn".into())
                        .spawn(move || {
                            if let Err(e) = connection(client, target, rtt, opened, id, &log) {
                                eprintln!("bench: delay proxy connection: {e:#}");
                            }
                        });
                }
            })
            .context("delay proxy thread")?;
        Ok(DelayProxy { addr, stop })
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Stops accepting (connections in flight end with their sockets).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn connection(
    client: TcpStream,
    target: SocketAddr,
    rtt: Duration,
    opened: Instant,
    id: usize,
    log: &Log,
) -> Result<()> {
    let server = TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
    for s in [&client, &server] {
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(IDLE_LIMIT))?;
    }
    let one_way = rtt / 2;
    let established = opened + rtt;
    let up = pump(
        client.try_clone()?,
        server.try_clone()?,
        one_way,
        Some(established),
        id,
        log.clone(),
    )?;
    let down = pump(server, client, one_way, None, id, log.clone())?;
    for t in up.into_iter().chain(down) {
        let _ = t.join();
    }
    Ok(())
}

type Chunk = Option<(Instant, Vec<u8>)>;

/// Forwards `from` → `to`, each chunk `delay` after it was read (and, on the
/// way up, not before `established`); logs what the client sent or received.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    delay: Duration,
    established: Option<Instant>,
    id: usize,
    log: Log,
) -> Result<Vec<thread::JoinHandle<()>>> {
    let (tx, rx) = mpsc::channel::<Chunk>();
    let up = established.is_some();
    let reader_log = log.clone();
    let reader = thread::Builder::new()
        .name("delay-read".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let at = Instant::now();
                let sent = established.map_or(at, |e| e.max(at));
                if up {
                    let first_byte = buf.first().copied().unwrap_or(0);
                    reader_log.record(
                        id,
                        Event {
                            up,
                            at,
                            sent,
                            first_byte,
                        },
                    );
                }
                if tx.send(Some((sent + delay, buf[..n].to_vec()))).is_err() {
                    break;
                }
            }
            let _ = tx.send(None);
        })?;
    let writer = thread::Builder::new()
        .name("delay-write".into())
        .spawn(move || {
            let mut last_due = Instant::now();
            while let Ok(chunk) = rx.recv() {
                let Some((due, bytes)) = chunk else {
                    // The sender closed: pass the end on, as late as its data.
                    sleep_until(last_due.max(Instant::now() + delay));
                    let _ = to.shutdown(Shutdown::Write);
                    break;
                };
                sleep_until(due);
                last_due = due;
                // Logged before the client can have it, so a count read right
                // after the client's next step sees it.
                if !up {
                    let at = Instant::now();
                    log.record(
                        id,
                        Event {
                            up,
                            at,
                            sent: at,
                            first_byte: bytes.first().copied().unwrap_or(0),
                        },
                    );
                }
                if to.write_all(&bytes).is_err() {
                    break;
                }
            }
        })?;
    Ok(vec![reader, writer])
}

fn sleep_until(due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        thread::sleep(due - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn up(t0: Instant, at_ms: u64, sent_ms: u64, first_byte: u8) -> Event {
        Event {
            up: true,
            at: t0 + MS * at_ms as u32,
            sent: t0 + MS * sent_ms as u32,
            first_byte,
        }
    }

    fn down(t0: Instant, at_ms: u64) -> Event {
        let at = t0 + MS * at_ms as u32;
        Event {
            up: false,
            at,
            sent: at,
            first_byte: 0x16,
        }
    }

    /// TCP, a TLS 1.3 handshake, then two requests, each answered in two chunks;
    /// a closing alert nobody answers.
    fn https_conn(t0: Instant, upstream: &str) -> Conn {
        Conn {
            upstream: upstream.into(),
            opened: t0,
            events: vec![
                up(t0, 0, 2, 0x16),
                down(t0, 4),
                up(t0, 4, 4, 0x14),
                up(t0, 4, 4, 0x17),
                down(t0, 6),
                down(t0, 7),
                up(t0, 8, 8, 0x17),
                down(t0, 10),
                up(t0, 11, 11, 0x15),
            ],
        }
    }

    #[test]
    fn one_connection_counts_tcp_tls_and_each_request() {
        let t0 = Instant::now();
        let trips = conn_round_trips(0, &https_conn(t0, "chime"), MS * 2);
        let kinds: Vec<Kind> = trips.iter().map(|t| t.kind.clone()).collect();
        assert_eq!(
            kinds,
            [Kind::Tcp, Kind::Tls, Kind::Request, Kind::Request],
            "{trips:?}"
        );
        assert_eq!(trips[2].end, t0 + MS * 7, "the answer's last chunk");
        assert_eq!(sequential(&trips), 4);
    }

    #[test]
    fn overlapping_connections_count_once() {
        let t0 = Instant::now();
        // A second connection opened 1 ms into the first: its TCP and TLS
        // overlap the first's; its requests come after the first's.
        let log = Log::default();
        for (name, start) in [("dynamodb", t0), ("chime", t0 + MS)] {
            let id = log.open(name, start);
            for e in https_conn(start, name).events {
                log.record(id, e);
            }
        }
        let all = log.round_trips(MS * 2, t0, t0 + MS * 100);
        assert_eq!(all.len(), 8);
        // dynamodb: TCP 0-2, TLS 2-4, requests 4-7 and 8-10; chime the same 1 ms
        // later: each of chime's overlaps one of dynamodb's.
        assert_eq!(sequential(&all), 4);
        // One after the other, the same two connections are 8 sequential trips.
        let log = Log::default();
        for (name, start) in [("dynamodb", t0), ("chime", t0 + MS * 12)] {
            let id = log.open(name, start);
            for e in https_conn(start, name).events {
                log.record(id, e);
            }
        }
        assert_eq!(sequential(&log.round_trips(MS * 2, t0, t0 + MS * 100)), 8);
        // A window sees only the trips that started in it.
        assert_eq!(
            log.round_trips(MS * 2, t0 + MS * 12, t0 + MS * 100).len(),
            4
        );
    }

    #[test]
    fn the_proxy_delays_each_way_and_logs_the_flights() -> Result<()> {
        // An echo server behind the proxy: connect, send, read the echo.
        let echo = TcpListener::bind("127.0.0.1:0")?;
        let echo_addr = echo.local_addr()?;
        thread::spawn(move || {
            if let Ok((mut s, _)) = echo.accept() {
                let mut buf = [0u8; 64];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        });
        let log = Log::default();
        let rtt = MS * 10;
        let proxy = DelayProxy::start("echo", echo_addr, rtt, log.clone())?;
        let started = Instant::now();
        let mut c = TcpStream::connect(proxy.addr)?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut buf = [0u8; 5];
        for _ in 0..2 {
            c.write_all(b"hello")?;
            c.read_exact(&mut buf)?;
        }
        let elapsed = started.elapsed();
        drop(c);
        proxy.stop();
        // The handshake's RTT, then two RTTs of echo.
        assert!(elapsed >= rtt * 3, "{elapsed:?}");
        let trips = log.round_trips(rtt, started, Instant::now());
        assert_eq!(trips.len(), 3, "{trips:?}");
        assert_eq!(sequential(&trips), 3);
        Ok(())
    }
}
