//! Serving over TCP: the accept loop (HTTP/1.1 keep-alive via hyper), which wraps every
//! connection in its [`ConnCtl`] (conn.rs) and hands requests to the router (routes.rs), and
//! the [`Handle`] that stops it all.

use crate::conn::{ConnCtl, ResetIo};
use crate::faults::Faults;
use crate::model::Account;
use crate::routes::router;
use crate::state::{Config, Emulator, Stats};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_service::Service;

/// A running chime-local. Dropping it (or [`Handle::shutdown`]) stops the server.
#[derive(Debug)]
pub struct Handle {
    addr: SocketAddr,
    emulator: Emulator,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Handle {
    /// The base URL, `http://127.0.0.1:PORT`: the SDK's `endpoint_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (for `router()` or direct inspection).
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// Replaces the fault configuration; takes effect on the next request.
    pub fn set_faults(&self, faults: Faults) {
        self.emulator.set_faults(faults);
    }

    /// The fault configuration now.
    pub fn faults(&self) -> Faults {
        self.emulator.faults()
    }

    /// All accounts, in creation order.
    pub fn accounts(&self) -> Vec<Account> {
        self.emulator.accounts()
    }

    /// Call counts per operation and outcome.
    pub fn stats(&self) -> Stats {
        self.emulator.stats()
    }

    /// Stops accepting, drops open connections, saves the state file; waits for all that.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Binds `config.host:config.port` (port 0 or `None`: a free one) and serves on the current
/// tokio runtime.
pub async fn spawn(config: Config) -> io::Result<Handle> {
    let listener = TcpListener::bind((config.host, config.port.unwrap_or(0))).await?;
    let addr = listener.local_addr()?;
    let emulator = Emulator::new(config)?;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(serve(listener, emulator.clone(), stopped));
    Ok(Handle {
        addr,
        emulator,
        stop,
        task: Some(task),
    })
}

async fn serve(listener: TcpListener, emulator: Emulator, mut stopped: watch::Receiver<bool>) {
    let app = router(emulator.clone());
    let saver = emulator.config().state_file.is_some().then(|| {
        let emulator = emulator.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = stopped.changed() => break,
                }
                if let Err(e) = emulator.save_if_dirty() {
                    tracing::warn!(error = %e, "could not save the state file");
                }
            }
        })
    });
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait, then keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ctl = Arc::new(ConnCtl::default());
        let io = TokioIo::new(ResetIo::new(stream, ctl.clone()));
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(ctl.clone());
            app.clone().call(request)
        });
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            // No header-read timeout: an idle keep-alive connection stays open until the
            // client closes it, so a pooled SDK connection is never closed under it.
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(None)
                .serve_connection(io, service);
            tokio::select! {
                _ = connection => {}
                _ = stopped.changed() => {}
            }
        });
    }
    if let Some(saver) = saver {
        let _ = saver.await;
    }
    if let Err(e) = emulator.save_if_dirty() {
        tracing::warn!(error = %e, "could not save the state file");
    }
}
