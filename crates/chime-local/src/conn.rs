//! One connection's fate: the switch a handler flips to have its connection reset or closed
//! unanswered ([`ConnCtl`]), the TCP stream wrapper that honours it, and the failing body
//! used when no socket is at hand (a `oneshot` test). The accept loop (server.rs) wraps each
//! stream; the request pipeline (routes.rs) flips the switch. Neither knows the other.

use axum::body::Bytes;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

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
pub(crate) struct ResetIo {
    inner: TcpStream,
    ctl: Arc<ConnCtl>,
}

impl ResetIo {
    /// `inner`, failing once `ctl` says so.
    pub(crate) fn new(inner: TcpStream, ctl: Arc<ConnCtl>) -> Self {
        Self { inner, ctl }
    }

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
