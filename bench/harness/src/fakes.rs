//! Stand-ins on loopback: a SendMessage-only SQS endpoint and a TLS-terminating
//! proxy with a generated certificate authority (shared by every proxy of a run).
//!
//! Why a fake SQS and not moto_server: moto answers SendMessage in a few
//! milliseconds of Python per call and serialises on the GIL, which would add
//! to the single-message time and, worse, grow with the batch and so hide the
//! function's own concurrency. The fake answers in microseconds, speaks both
//! protocols the SDKs use (JSON 1.0 with `x-amz-target: AmazonSQS.SendMessage`,
//! and the query protocol), returns a real `MD5OfMessageBody`, and keeps
//! every reply so the harness can check what the function sent.
use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A SendMessage-only SQS endpoint.
pub struct FakeSqs {
    pub addr: SocketAddr,
    replies: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl FakeSqs {
    pub async fn start() -> Result<FakeSqs> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let replies = Arc::new(Mutex::new(Vec::new()));
        let counter = Arc::new(AtomicU64::new(0));
        let state = Arc::clone(&replies);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&state);
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        send_message(Arc::clone(&state), Arc::clone(&counter), req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(FakeSqs {
            addr,
            replies,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn queue_url(&self) -> String {
        format!("http://{}/123456789012/chime-onboard-replies", self.addr)
    }

    /// Takes the reply bodies received so far.
    pub fn take_replies(&self) -> Vec<String> {
        self.replies
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

async fn send_message(
    replies: Arc<Mutex<Vec<String>>>,
    counter: Arc<AtomicU64>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let json = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.ends_with(".SendMessage"));
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let message = match json {
        Some(true) => serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("MessageBody")?.as_str().map(str::to_string)),
        Some(false) => None,
        None => {
            let mut action = None;
            let mut message = None;
            for (k, v) in form_urlencoded::parse(&body) {
                match k.as_ref() {
                    "Action" => action = Some(v.into_owned()),
                    "MessageBody" => message = Some(v.into_owned()),
                    _ => {}
                }
            }
            message.filter(|_| action.as_deref() == Some("SendMessage"))
        }
    };
    let n = counter.fetch_add(1, Ordering::Relaxed);
    let id = format!("5fea7756-0ea4-451a-a703-{n:012x}");
    let Some(message) = message else {
        let mut response = Response::new(Full::new(Bytes::from_static(
            br#"{"__type":"com.amazonaws.sqs#UnsupportedOperation","message":"bench fake: SendMessage only"}"#,
        )));
        *response.status_mut() = hyper::StatusCode::BAD_REQUEST;
        return Ok(response);
    };
    let md5 = format!("{:x}", Md5::digest(message.as_bytes()));
    if let Ok(mut r) = replies.lock() {
        r.push(message);
    }
    let (content_type, body) = if json == Some(true) {
        (
            "application/x-amz-json-1.0",
            serde_json::json!({ "MessageId": id, "MD5OfMessageBody": md5 }).to_string(),
        )
    } else {
        (
            "text/xml",
            format!(
                "<SendMessageResponse><SendMessageResult><MD5OfMessageBody>{md5}</MD5OfMessageBody>\
                 <MessageId>{id}</MessageId></SendMessageResult><ResponseMetadata>\
                 <RequestId>{id}</RequestId></ResponseMetadata></SendMessageResponse>"
            ),
        )
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    if let Ok(v) = content_type.parse() {
        response.headers_mut().insert("content-type", v);
    }
    if let Ok(v) = id.parse() {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    Ok(response)
}

/// Files the functions are pointed at to trust the proxies' certificate.
#[derive(Clone, Debug)]
pub struct TrustFiles {
    /// Only the generated CA: the smallest possible root store.
    pub ca_only: PathBuf,
    /// The system bundle plus the generated CA: what a function scanning the
    /// platform's roots really parses (about 140 certificates).
    pub bundle: PathBuf,
}

/// A generated certificate authority and the one server certificate (for
/// `127.0.0.1` and `localhost`) every TLS proxy of a run presents.
pub struct TestCa {
    pub trust: TrustFiles,
    server: Arc<rustls::ServerConfig>,
}

impl TestCa {
    /// Generates the CA and the leaf, and writes the trust files into `dir`.
    pub fn generate(dir: &Path) -> Result<TestCa> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "chime-onboard bench CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;
        let mut leaf_params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "chime-local (bench)");
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let leaf_key = KeyPair::generate()?;
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key)?;

        std::fs::create_dir_all(dir)?;
        let ca_only = dir.join("bench-ca.pem");
        std::fs::write(&ca_only, ca.pem())?;
        let system = [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
        ]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
        let bundle = dir.join("bench-ca-bundle.pem");
        std::fs::write(&bundle, format!("{system}\n{}", ca.pem()))?;

        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(leaf.der().to_vec())], key)
            .context("proxy certificate")?;
        Ok(TestCa {
            trust: TrustFiles { ca_only, bundle },
            server: Arc::new(config),
        })
    }
}

/// The requests a TLS proxy decrypted: when, and `METHOD /path [x-amz-target]`.
pub type Tap = Arc<Mutex<Vec<(Instant, String)>>>;

/// A TLS-terminating proxy on loopback in front of an HTTP upstream.
pub struct TlsProxy {
    pub addr: SocketAddr,
    pub trust: TrustFiles,
    task: JoinHandle<()>,
}

impl TlsProxy {
    /// Terminates TLS with `ca`'s certificate and forwards to `upstream`; with
    /// a `tap`, notes the first line (and `x-amz-target`) of each request.
    pub async fn start(upstream: SocketAddr, ca: &TestCa, tap: Option<Tap>) -> Result<TlsProxy> {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&ca.server));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let tap = tap.clone();
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let Ok(mut plain) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = plain.set_nodelay(true);
                    match tap {
                        None => {
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                        }
                        Some(tap) => tapped(tls, plain, tap).await,
                    }
                });
            }
        });
        Ok(TlsProxy {
            addr,
            trust: ca.trust.clone(),
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

/// Copies both ways like `copy_bidirectional`, noting each request line.
async fn tapped(tls: tokio_rustls::server::TlsStream<TcpStream>, plain: TcpStream, tap: Tap) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut tls_read, mut tls_write) = tokio::io::split(tls);
    let (mut plain_read, mut plain_write) = plain.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = tls_read.read(&mut buf).await {
            if n == 0 {
                break;
            }
            if let Some(line) = request_line(&buf[..n]) {
                if let Ok(mut t) = tap.lock() {
                    t.push((Instant::now(), line));
                }
            }
            if plain_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = plain_write.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut plain_read, &mut tls_write).await;
        let _ = tls_write.shutdown().await;
    };
    tokio::join!(up, down);
}

/// `POST /accounts`, or `POST / PutItem` for a DynamoDB call, when `chunk`
/// starts an HTTP request.
fn request_line(chunk: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(chunk.get(..chunk.len().min(4096))?).ok()?;
    let first = text.lines().next()?;
    let (method, rest) = first.split_once(' ')?;
    if !["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"].contains(&method) {
        return None;
    }
    let path = rest.split(' ').next().unwrap_or("");
    let target = text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("x-amz-target")
            .then(|| value.trim().rsplit('.').next().unwrap_or("").to_string())
    });
    Some(match target {
        Some(t) => format!("{method} {path} {t}"),
        None => format!("{method} {path}"),
    })
}
