//! `ops`: reads the arguments and the environment, builds the AWS ports
//! (`AWS_ENDPOINT_URL` reaches them all, as for the functions), prints the
//! answer and exits with its status. Everything else is in the library.
// The rotation plan's future nests as deeply as rotate-keys' handler.
#![recursion_limit = "256"]

use ops::cli::{self, Command};
use ops::config::OpsConfig;
use ops::{Answer, AwsOps};
use shared::config::FromEnv;
use std::io::Write;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let answer = run().await;
    // A closed pipe (`ops status X | head`) is not worth a panic.
    let _ = std::io::stdout().write_all(answer.stdout.as_bytes());
    let _ = std::io::stderr().write_all(answer.stderr.as_bytes());
    ExitCode::from(answer.code)
}

async fn run() -> Answer {
    let invocation = match cli::parse(std::env::args().skip(1)) {
        Ok(i) => i,
        Err(usage) => return Answer::usage(std::env::args().any(|a| a == "--json"), &usage),
    };
    if invocation.command == Command::Help {
        return Answer { code: ops::ANSWERED, stdout: format!("{}\n", cli::USAGE), stderr: String::new() };
    }
    let config = match OpsConfig::from_env() {
        Ok(c) => c,
        Err(e) => return Answer::error(invocation.json, ops::USAGE, e),
    };
    let aws = shared::aws::load_config().await;
    AwsOps::over_aws(&aws, config).answer(&invocation).await
}
