//! What starts one function, and the settings Lambda would give it: the executable, its own
//! variables, and the variables, ARN and limits Lambda sets around it ([`Function`]).

use std::path::PathBuf;
use std::time::Duration;

/// The account in every ARN the emulator hands out.
const ACCOUNT: &str = "123456789012";

/// How to start one function, and the settings Lambda would give it.
#[derive(Clone, Debug)]
pub struct Function {
    /// The bootstrap executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Working directory (default: ours).
    pub cwd: Option<PathBuf>,
    /// Variables of this function (endpoints, settings); they override Lambda's.
    pub env: Vec<(String, String)>,
    /// `AWS_LAMBDA_FUNCTION_NAME`, also in the invoked function ARN.
    pub name: String,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in MB.
    pub memory_mb: u32,
    /// The function timeout: the deadline of every invocation.
    pub timeout: Duration,
    /// `AWS_REGION`.
    pub region: String,
    /// `AWS_LAMBDA_LOG_FORMAT`: `JSON` or `Text`.
    pub log_format: String,
    /// Where the process's stdout and stderr go.
    pub output: Output,
}

/// Where a function's stdout and stderr go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Ours.
    Inherit,
    /// Nowhere.
    Null,
    /// Appended to this file (both streams).
    Append(PathBuf),
    /// Stdout piped (see [`Environment::take_stdout`](super::Environment::take_stdout)), stderr discarded.
    Piped,
}

impl Function {
    /// A function with Lambda's defaults: 128 MB, 30 s timeout, us-east-1, JSON logs,
    /// named after the executable, output inherited.
    pub fn new(program: impl Into<PathBuf>) -> Function {
        let program = program.into();
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "function".into());
        Function {
            program,
            args: Vec::new(),
            cwd: None,
            env: Vec::new(),
            name,
            memory_mb: 128,
            timeout: Duration::from_secs(30),
            region: "us-east-1".into(),
            log_format: "JSON".into(),
            output: Output::Inherit,
        }
    }

    /// Adds one variable of the function's own.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Function {
        self.env.push((name.into(), value.into()));
        self
    }

    /// The variables Lambda sets, before the function's own.
    pub(super) fn lambda_env(&self, runtime_api: &str) -> Vec<(String, String)> {
        let name = &self.name;
        let vars = [
            ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                self.memory_mb.to_string(),
            ),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2026/01/01/[$LATEST]local".into(),
            ),
            ("AWS_LAMBDA_LOG_FORMAT", self.log_format.clone()),
            ("AWS_LAMBDA_LOG_LEVEL", "INFO".into()),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_DEFAULT_REGION", self.region.clone()),
            // Dummy credentials: emulators accept any; nothing real is ever handed out.
            ("AWS_ACCESS_KEY_ID", "AKIDLAMBDALOCAL00000".into()),
            (
                "AWS_SECRET_ACCESS_KEY",
                "lambda/local/not/a/real/key/0000000000".into(),
            ),
            ("AWS_SESSION_TOKEN", "lambda-local-session-token".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
            ("LANG", "en_US.UTF-8".into()),
            ("TZ", ":UTC".into()),
        ];
        vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    pub(super) fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{ACCOUNT}:function:{}",
            self.region, self.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_function_arn_and_lambda_variables_follow_the_settings() {
        let mut f = Function::new("/opt/fn/bootstrap");
        f.name = "onboard".into();
        f.memory_mb = 256;
        assert_eq!(
            f.arn(),
            "arn:aws:lambda:us-east-1:123456789012:function:onboard"
        );
        let env: HashMap<_, _> = f.lambda_env("127.0.0.1:9").into_iter().collect();
        assert_eq!(env["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:9");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "onboard");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
        assert_eq!(Function::new("/x/bootstrap").name, "bootstrap");
    }
}
