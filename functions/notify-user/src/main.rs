// The handler future nests deeply (record > user > idempotency > SDK call).
#![recursion_limit = "256"]

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{run, service_fn, LambdaEvent};
use notify_user::Deps;
use shared::aws::{load_config, IamDirectory, SecretsManagerStore, SesMailer, StateTable};
use shared::config::{FromEnv, NotifyUserConfig};
use shared::ports::SystemClock;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::init_tracing();
    let config = NotifyUserConfig::from_env()?;
    let aws = load_config().await;
    let table = StateTable::new(&aws, &config.table_name);
    let deps = Deps {
        directory: IamDirectory::new(&aws),
        secrets: SecretsManagerStore::new(&aws),
        ledger: table.ledger(),
        idempotency: table.idempotency(),
        status: table.status(),
        mailer: SesMailer::new(&aws),
        clock: SystemClock,
        config,
    };
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let lease_until = shared::lambda::deadline_secs(&event.context);
        Ok::<_, lambda_runtime::Error>(deps.handle_sqs(event.payload, lease_until).await)
    }))
    .await
}
