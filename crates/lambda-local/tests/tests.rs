//! lambda-local's integration tests: real processes on loopback.
//!
//! The function is `tests/fake_runtime.py` (its modes are documented there), run by the
//! Python interpreter found on PATH; the SQS tests need moto_server (`make venv`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The event source mapping against moto_server's SQS.
mod esm;
/// The Runtime API emulator against a runtime that answers, fails, crashes or hangs.
mod runtime;

use lambda_local::Function;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The real interpreter behind `python3` (a pyenv shim needs a PATH the function lacks).
fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let out = std::process::Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .output()
                .expect("python3 on PATH");
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        })
        .clone()
}

/// The fake runtime in `mode`.
fn fake(mode: &str) -> Function {
    let mut function = Function::new(python());
    function.args = vec![concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fake_runtime.py").into()];
    function.name = "fake".into();
    function.output = lambda_local::Output::Null;
    function.env("FAKE_MODE", mode)
}
