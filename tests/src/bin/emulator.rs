//! `make emulator`: a moto server on a free loopback port with the
//! pipeline's resources (the same bootstrap as `make run` and the tests),
//! and the `export` lines that point the SDK, `make run` and `ops` at it.
//! Stays in the foreground until Ctrl-C; the server's watchdog stops it
//! when this process ends, however it ends.

use aws_config::retry::RetryConfig;
use std::process::ExitCode;
use tests::bootstrap::{ensure, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    let (moto, _watchdog) = match tests::moto::start() {
        Ok(started) => started,
        Err(e) => {
            eprintln!("emulator: could not start moto_server ({e}); install it with `pip install 'moto[server]'`");
            return ExitCode::from(1);
        }
    };
    let sdk = tests::emulator_config(&moto.endpoint, RetryConfig::standard()).await;
    let prefix = std::env::var("IAM_PROVISIONER_PREFIX").unwrap_or_else(|_| "iam-provisioner-".into());
    let env = match ensure(&sdk, Settings::from_env(&prefix)).await {
        Ok(env) => env,
        Err(e) => {
            eprintln!("emulator: creating the pipeline's resources failed: {e}");
            return ExitCode::from(1);
        }
    };
    // Clients go through a proxy that answers what moto lacks as IAM would
    // (ListServiceSpecificCredentials, MFA device tags): an offboarding, or
    // `ops plan` of one, works against it as against AWS.
    let proxy = match tests::proxy::FaultProxy::start(&moto.endpoint).await {
        Ok(proxy) => proxy,
        Err(e) => {
            eprintln!("emulator: could not start the proxy in front of moto: {e}");
            return ExitCode::from(1);
        }
    };
    proxy.fill_moto_gaps();
    println!(
        "# moto is running at {} (clients: {}, which answers the calls moto lacks); paste these lines into another shell:",
        moto.endpoint, proxy.endpoint
    );
    let mut exports = vec![
        ("AWS_ENDPOINT_URL".to_owned(), proxy.endpoint.clone()),
        ("AWS_REGION".to_owned(), tests::REGION.to_owned()),
        // Dummies: moto accepts any credentials.
        ("AWS_ACCESS_KEY_ID".to_owned(), "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "testing".to_owned()),
        ("IAM_PROVISIONER_PREFIX".to_owned(), prefix),
    ];
    exports.extend(env.ops_env());
    for (k, v) in exports {
        println!("export {k}='{v}'");
    }
    println!("# then: make run; make ops ARGS=\"status ONB-1042\". Ctrl-C here stops the emulator.");
    // Ctrl-C ends the process (the default signal action); the watchdog
    // sees it gone and stops moto.
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}
