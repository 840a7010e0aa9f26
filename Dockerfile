# cachebench on Airflow 3: the official image plus what a campaign run needs on a worker.
# Untested here (no Docker engine on our machines); tests/deploy/test_compose_static.py checks
# that every COPY source exists, and tests/deploy runs the same components without Docker.
FROM apache/airflow:3.3.2-python3.11

ARG TERRAFORM_VERSION=1.11.4
ARG MEMTIER_VERSION=2.1.4
ARG TARGETARCH=amd64

USER root
# redis-server/redis-tools: Redis 7.0 for the local target and the redis-benchmark fallback.
# The build tools are for memtier_benchmark only and are removed in the same layer.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        redis-server redis-tools curl unzip ca-certificates git \
        build-essential autoconf automake pkg-config libpcre3-dev libevent-dev zlib1g-dev libssl-dev; \
    curl -fsSL -o /tmp/terraform.zip \
        "https://releases.hashicorp.com/terraform/${TERRAFORM_VERSION}/terraform_${TERRAFORM_VERSION}_linux_${TARGETARCH}.zip"; \
    unzip -o /tmp/terraform.zip terraform -d /usr/local/bin; \
    rm /tmp/terraform.zip; \
    git clone --depth 1 --branch "${MEMTIER_VERSION}" \
        https://github.com/RedisLabs/memtier_benchmark.git /tmp/memtier; \
    cd /tmp/memtier; autoreconf -ivf; ./configure; make -j"$(nproc)"; make install; \
    cd /; rm -rf /tmp/memtier; \
    apt-get purge -y build-essential autoconf automake pkg-config git; \
    apt-get autoremove -y; \
    apt-get install -y --no-install-recommends libevent-2.1-7 libevent-openssl-2.1-7 libpcre3; \
    rm -rf /var/lib/apt/lists/*; \
    terraform version; memtier_benchmark --version; redis-server --version

USER airflow
# The pinned project requirements (Airflow itself pinned to the image's version).
COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==3.3.2" -r /opt/airflow/requirements.txt

# The project, so the image also runs without the compose bind mounts (which override these).
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/
ENV AIRFLOW__CORE__PLUGINS_FOLDER=/opt/airflow/plugins \
    CACHEBENCH_RESULTS=/opt/airflow/results
