//! Serving over TCP: the accept loop (HTTP/1.1 keep-alive via hyper), the per-connection
//! control that lets a handler reset or close its connection unanswered, and the [`Handle`]
//! that stops it all.

use crate::routes::router;
use crate::state::{Config, Emulator, Stats};
use crate::{Account, Faults};
use axum::body::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_service::Service;

/// Per-connection switch a handler flips to have the connection reset or closed instead of
/// answered. Inserted into every request's extensions by the accept loop.
#[derive(Debug, Default)]
pub struct ConnCtl {
    state: AtomicU8,
}

const OPEN: u8 = 0;
const RESET: u8 = 1;
const CLOSED: u8 = 2;

impl ConnCtl {
    /// The next write on this connection fails and the socket closes with an RST.
    pub fn reset(&self) {
        self.state.store(RESET, Ordering::Release);
    }

    /// The next write on this connection fails and the socket closes normally (FIN), so the
    /// client sees the connection end without a response.
    pub fn close(&self) {
        self.state.store(CLOSED, Ordering::Release);
    }
}

/// A TCP stream that, once its [`ConnCtl`] is reset (or closed), fails every operation, so
/// hyper drops it unanswered; for a reset it first sets `SO_LINGER` to zero, so the kernel
/// sends RST instead of FIN.
struct ResetIo {
    inner: TcpStream,
    ctl: Arc<ConnCtl>,
}

impl ResetIo {
    fn check(&self) -> io::Result<()> {
        match self.ctl.state.load(Ordering::Acquire) {
            OPEN => Ok(()),
            RESET => {
                let _ = self.inner.set_zero_linger();
                Err(io::ErrorKind::ConnectionReset.into())
            }
            _ => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }
}

impl AsyncRead for ResetIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResetIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(e) = this.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Err(e) = this.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// A response body that fails at once: the reset of last resort when no socket is at hand.
pub(crate) struct BrokenBody;

impl http_body::Body for BrokenBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Poll::Ready(Some(Err(io::ErrorKind::ConnectionReset.into())))
    }
}

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
        let io = TokioIo::new(ResetIo {
            inner: stream,
            ctl: ctl.clone(),
        });
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
