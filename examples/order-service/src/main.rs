#[tokio::main]
async fn main() -> std::process::ExitCode {
    order_service::main().await
}
