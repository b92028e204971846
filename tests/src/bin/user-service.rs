#[tokio::main]
async fn main() -> std::process::ExitCode {
    user_service::main().await
}
