# syntax=docker/dockerfile:1
# The image the Helm chart runs: the `vigil` agent beside PostgreSQL 15 (ENGINE=postgresql, the default)
# or MariaDB 10.11 (ENGINE=mariadb), on Debian 12 like the builder, as a non-root user (uid 999).
#   docker build -t vigil:0.1.0 .
#   docker build --build-arg ENGINE=mariadb -t vigil:0.1.0-mariadb .

FROM rust:1.90-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p vigil-agent --bin vigil \
    && ./target/release/vigil man /src/target/man

FROM debian:bookworm-slim
ARG ENGINE=postgresql
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The database's OS user first, with a fixed uid the chart's securityContext names; the packages keep it.
# tini is PID 1: it reaps the processes the database leaves to it and passes signals to the agent.
# Versions are Debian 12's (its security updates included), not pinned: a pinned point release disappears
# from the archive when the next one comes.
# hadolint ignore=DL3008
RUN set -eu; \
    if [ "$ENGINE" = postgresql ]; then user=postgres; packages=(postgresql-15 postgresql-client-15); \
    else user=mysql; packages=(mariadb-server mariadb-backup mariadb-client); fi; \
    groupadd --system --gid 999 "$user"; \
    useradd --system --uid 999 --gid 999 --home-dir /var/lib/vigil --shell /usr/sbin/nologin "$user"; \
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; \
    apt-get update; \
    apt-get install -y --no-install-recommends tini ca-certificates "${packages[@]}"; \
    rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d; \
    install -d -o 999 -g 999 /var/lib/vigil /var/run/postgresql /run/mysqld
COPY --from=build /src/target/release/vigil /usr/bin/vigil
# The manual pages (vigil.1, vigil-list.1, …), read with `man -l` (the slim image has no man program).
COPY --from=build /src/target/man/ /usr/share/man/man1/
ENV PATH=/usr/lib/postgresql/15/bin:$PATH
USER 999:999
EXPOSE 5432 3306 8008 2222
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/bin/vigil"]
CMD ["agent", "-c", "/etc/vigil/vigil.yml"]
