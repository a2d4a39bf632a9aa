# One image for every Keel role (api, worker, scheduler, migrate): the command picks the role.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
ENV SQLX_OFFLINE=true
RUN cargo build --release --locked --bin keel && strip target/release/keel

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 keel
COPY --from=build /src/target/release/keel /usr/local/bin/keel
USER keel
# Listening beyond loopback, Keel refuses the public development admin token and encryption key:
# every role but `migrate` needs KEEL_ADMIN_TOKEN (16+ characters) and KEEL_ENCRYPTION_KEY
# (openssl rand -hex 32), else it exits with code 2 naming both. With KEEL_ENV=production, set
# KEEL_BILLING_MODE=local or a Stripe key (STRIPE_SECRET_KEY) too. See README, Docker.
ENV KEEL_API_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["keel"]
CMD ["up"]
