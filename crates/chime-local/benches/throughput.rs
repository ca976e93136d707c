//! CreateAccount throughput of chime-local, faults off: a small load generator speaking raw
//! HTTP/1.1 keep-alive over tokio `TcpStream`s, against an in-process server on loopback
//! (or `--url` for one already running). A measurement, not a test: it prints req/s.
//!
//! `cargo bench -p chime-local --bench throughput -- [--secs 5] [--warmup 1] [--connections 32] [--url http://127.0.0.1:PORT]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Args {
    secs: u64,
    warmup: u64,
    connections: usize,
    url: Option<String>,
}

fn args() -> Args {
    let mut args = Args {
        secs: 5,
        warmup: 1,
        connections: 32,
        url: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect("flag needs a value");
        match flag.as_str() {
            "--secs" => args.secs = value().parse().expect("--secs N"),
            "--warmup" => args.warmup = value().parse().expect("--warmup N"),
            "--connections" => args.connections = value().parse().expect("--connections N"),
            "--url" => args.url = Some(value()),
            // `cargo bench` passes --bench; filters are not used here.
            _ => {}
        }
    }
    args
}

/// What one connection measured during the window.
#[derive(Default)]
struct Tally {
    created: u64,
    other: u64,
    latencies_us: Vec<u32>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> usize {
    let head = String::from_utf8_lossy(head);
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn connection(addr: String, start: Instant, warmup: Duration, end: Duration) -> Tally {
    let body = r#"{"Name":"bench account"}"#;
    let request = format!(
        "POST /accounts HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         X-Amz-Date: 20260101T000000Z\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/chime/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=00\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut tally = Tally::default();
    loop {
        let sent = Instant::now();
        if sent.duration_since(start) >= end {
            break;
        }
        stream.write_all(request.as_bytes()).await.expect("write");
        buf.clear();
        let (head_end, total) = loop {
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                let total = i + 4 + content_length(&buf[..i]);
                break (i, total);
            }
        };
        while buf.len() < total {
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
        let measured = sent.duration_since(start) >= warmup;
        if measured {
            if buf[..head_end].starts_with(b"HTTP/1.1 201") {
                tally.created += 1;
            } else {
                tally.other += 1;
            }
            let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
            tally.latencies_us.push(us);
        }
    }
    tally
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let server = match &args.url {
            Some(_) => None,
            None => Some(
                chime_local::spawn(chime_local::Config::default())
                    .await
                    .expect("spawn"),
            ),
        };
        let url = args
            .url
            .clone()
            .or_else(|| server.as_ref().map(|s| s.url()))
            .expect("url");
        let addr = url.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let warmup = Duration::from_secs(args.warmup);
        let end = warmup + Duration::from_secs(args.secs);
        let start = Instant::now();
        let tasks: Vec<_> = (0..args.connections)
            .map(|_| tokio::spawn(connection(addr.clone(), start, warmup, end)))
            .collect();
        let mut total = Tally::default();
        for task in tasks {
            let t = task.await.expect("connection task");
            total.created += t.created;
            total.other += t.other;
            total.latencies_us.extend(t.latencies_us);
        }
        total.latencies_us.sort_unstable();
        let pct = |p: f64| {
            let v = &total.latencies_us;
            if v.is_empty() {
                0.0
            } else {
                f64::from(v[((v.len() - 1) as f64 * p) as usize]) / 1000.0
            }
        };
        let rps = total.created as f64 / args.secs as f64;
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        println!(
            "chime-local CreateAccount: {rps:.0} req/s ({} created, {} other) over {} s, {} keep-alive connections, {cores} cores, latency p50 {:.2} ms p99 {:.2} ms{}",
            total.created,
            total.other,
            args.secs,
            args.connections,
            pct(0.50),
            pct(0.99),
            if server.is_some() { ", server in-process" } else { "" },
        );
        if let Some(server) = server {
            println!("accounts held: {}", server.accounts().len());
        }
    });
}
