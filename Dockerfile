# One image per service: docker build --build-arg SERVICE=order-service .
# Stage 1 plans the dependency build, stage 2 builds dependencies (cached
# until Cargo.toml/Cargo.lock change), then the service; the runtime stage is
# a slim Debian with only the binary, run as a non-root user.
FROM rust:1-bookworm AS chef
RUN cargo install cargo-chef --locked
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
ARG SERVICE=order-service
COPY --from=planner /src/recipe.json recipe.json
# inventory-service generates its gRPC code from this file at build time
# (protox, no protoc): there for the cook step in case its build script runs.
COPY examples/inventory-service/proto examples/inventory-service/proto
RUN cargo chef cook --release --recipe-path recipe.json -p ${SERVICE}
COPY . .
RUN cargo build --release --locked -p ${SERVICE} \
 && cp target/release/${SERVICE} /service

FROM debian:bookworm-slim AS runtime
RUN useradd --system --uid 10001 --no-create-home app
COPY --from=builder /service /usr/local/bin/service
USER 10001
ENV HOST=0.0.0.0
ENTRYPOINT ["/usr/local/bin/service"]
