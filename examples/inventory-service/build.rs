//! Generates the gRPC code from `proto/inventory.proto` with protox, a
//! protobuf compiler in Rust: no `protoc` needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/inventory.proto");
    let descriptors = protox::compile(["inventory.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
