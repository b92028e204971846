#[tokio::main]
async fn main() -> std::process::ExitCode {
    inventory_service::main().await
}
