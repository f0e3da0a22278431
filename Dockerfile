# darkpool in a container: build the release binary, ship it with the sample data.
# `--build-arg FEATURES=gssapi` builds in Kerberos (librdkafka against Cyrus SASL) and ships
# the SASL GSSAPI module and kinit with it.
FROM rust:1.95-bookworm AS build
ARG FEATURES=
# The bundled librdkafka builds with make and links OpenSSL (libssl-dev is in this image).
WORKDIR /src
COPY . .
RUN if [ -n "$FEATURES" ]; then \
      apt-get update && apt-get install -y --no-install-recommends libsasl2-dev; \
    fi \
    && cargo build --release --locked ${FEATURES:+--features "$FEATURES"}

FROM debian:bookworm-slim
ARG FEATURES=
# librdkafka's TLS (for -X security.protocol=SSL / SASL_SSL) links Debian's OpenSSL.
RUN apt-get update && apt-get install -y --no-install-recommends libssl3 ca-certificates \
      $(case "$FEATURES" in *gssapi*) echo libsasl2-2 libsasl2-modules-gssapi-mit krb5-user;; esac) \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/darkpool /usr/local/bin/darkpool
COPY data /opt/darkpool/data
WORKDIR /opt/darkpool
ENV DARKPOOL_LAKE=/lake
VOLUME /lake
ENTRYPOINT ["darkpool"]
CMD ["--help"]
