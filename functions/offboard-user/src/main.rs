#![recursion_limit = "256"]

use lambda_runtime::{run, service_fn, LambdaEvent};
use offboard_user::Deps;
use shared::aws::{load_config, IamDirectory, SecretsManagerStore, SesMailer, StateTable};
use shared::config::{FromEnv, OffboardUserConfig};
use shared::ports::SystemClock;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::init_tracing();
    let config = OffboardUserConfig::from_env()?;
    let aws = load_config().await;
    let table = StateTable::new(&aws, &config.table_name);
    let deps = Deps {
        iam: IamDirectory::new(&aws),
        secrets: SecretsManagerStore::new(&aws),
        idempotency: table.idempotency(),
        status: table.status(),
        mailer: SesMailer::new(&aws),
        clock: SystemClock,
        config,
    };
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let lease_until = shared::lambda::deadline_secs(&event.context);
        deps.handle_event(event.payload, lease_until).await
    }))
    .await
}
