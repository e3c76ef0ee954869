//! The floor for cold starts: a lambda_runtime function that does nothing,
//! built the same way as the real ones.

use lambda_runtime::{run, service_fn, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move { Ok::<_, lambda_runtime::Error>(event.payload) },
    ))
    .await
}
