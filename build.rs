//! Generates the OTLP logs messages (`ExportLogsServiceRequest` and what it holds) from the
//! official opentelemetry-proto files vendored in `proto/`, with prost-build and the protoc
//! that the `protoc-bin-vendored` crate ships. The gRPC service is not generated: only the
//! messages, which `POST /otlp/v1/logs` decodes (see `src/ingest/otlp/`).

use std::path::Path;

/// The `.proto` files of OTLP logs over HTTP, relative to `proto/`.
const PROTOS: &[&str] = &[
    "opentelemetry/proto/common/v1/common.proto",
    "opentelemetry/proto/resource/v1/resource.proto",
    "opentelemetry/proto/logs/v1/logs.proto",
    "opentelemetry/proto/collector/logs/v1/logs_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new("proto");
    let files: Vec<_> = PROTOS.iter().map(|p| root.join(p)).collect();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    config.compile_protos(&files, &[root])?;
    Ok(())
}
