# darkpool in a container: build the release binary, ship it with the sample data.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
COPY --from=build /src/target/release/darkpool /usr/local/bin/darkpool
COPY data /opt/darkpool/data
WORKDIR /opt/darkpool
ENV DARKPOOL_LAKE=/lake
VOLUME /lake
ENTRYPOINT ["darkpool"]
CMD ["--help"]
