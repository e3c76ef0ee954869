// The handler future nests deeply (run > user > key > idempotency > SDK call).
#![recursion_limit = "256"]

use lambda_runtime::{run, service_fn, LambdaEvent};
use rotate_keys::Deps;
use shared::aws::{load_config, IamDirectory, SesMailer, SqsPublisher, StateTable};
use shared::config::{FromEnv, RotateKeysConfig};
use shared::ports::SystemClock;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::init_tracing();
    let config = RotateKeysConfig::from_env()?;
    let aws = load_config().await;
    let table = StateTable::new(&aws, &config.table_name);
    let deps = Deps {
        directory: IamDirectory::new(&aws),
        idempotency: table.idempotency(),
        publisher: SqsPublisher::new(&aws, &config.next_queue_url),
        mailer: SesMailer::new(&aws),
        ledger: table.ledger(),
        clock: SystemClock,
        config,
    };
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        // The invocation's deadline bounds the leases and the run's length.
        let deadline = shared::lambda::deadline_secs(&event.context);
        let summary = deps.handle(&event.payload, deadline).await?;
        Ok::<_, lambda_runtime::Error>(serde_json::to_value(summary)?)
    }))
    .await
}
