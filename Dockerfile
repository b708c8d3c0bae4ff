# sqlgate: one gateway replica per container. Build: docker build -t sqlgate .
# Multi-stage: the build stage makes a virtual environment, the runtime stage copies only that.
# Runs as a non-root user and writes only to /var/lib/sqlgate (data_dir) and /tmp, so it works
# with a read-only root filesystem (mount both as volumes, see deploy/kubernetes/).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/sqlgate
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/sqlgate/bin/pip install '.[otel]'

FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 sqlgate \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/sqlgate --shell /usr/sbin/nologin sqlgate \
    && mkdir -p /var/lib/sqlgate /etc/sqlgate \
    && chown 10001:10001 /var/lib/sqlgate
COPY --from=build /opt/sqlgate /opt/sqlgate
ENV PATH=/opt/sqlgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SQLGATE_CONFIG=/etc/sqlgate/sqlgate.yaml \
    SQLGATE_DATA_DIR=/var/lib/sqlgate
USER 10001:10001
WORKDIR /var/lib/sqlgate
VOLUME ["/var/lib/sqlgate"]
EXPOSE 6543 8480
HEALTHCHECK --interval=10s --timeout=3s CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8480/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["sqlgate", "serve"]
