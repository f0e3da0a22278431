# darkpool in a container: build the release binary, ship it with the sample data.
FROM rust:1.95-bookworm AS build
# The bundled librdkafka builds with make and links OpenSSL (libssl-dev is in this image).
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
# librdkafka's TLS (for -X security.protocol=SSL / SASL_SSL) links Debian's OpenSSL.
RUN apt-get update && apt-get install -y --no-install-recommends libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/darkpool /usr/local/bin/darkpool
COPY data /opt/darkpool/data
WORKDIR /opt/darkpool
ENV DARKPOOL_LAKE=/lake
VOLUME /lake
ENTRYPOINT ["darkpool"]
CMD ["--help"]
