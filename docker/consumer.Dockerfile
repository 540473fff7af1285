# The email-ingest consumer (`python -m consumer_service`).
# Build from the repository root:  docker build -f docker/consumer.Dockerfile -t email-ingest-consumer .
#
# The base image is pinned by tag and by the digest of its multi-architecture index (linux/amd64, linux/arm64);
# Dependabot (.github/dependabot.yml) proposes updates. Both stages use the same base so that the virtualenv built
# in the first one runs unchanged in the second.

FROM python:3.11.15-slim-bookworm@sha256:b18992999dbe963a45a8a4da40ac2b1975be1a776d939d098c647482bcad5cba AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# Dependencies: exactly the lock (every transitive pin is in it, hence --no-deps), each wheel checked against the
# lock's hashes (--require-hashes), wheels only (no compiler is needed or present), into a virtualenv that the
# runtime stage copies. pip and setuptools are removed from it. botocore keeps the models of the AWS services this
# image calls (SQS and S3) and of its credential providers (STS, SSO): it loads a model only when a client for that
# service is made, and the other ~400 are most of its size; examples-1.json is documentation it never reads.
COPY requirements/consumer.lock /tmp/requirements.lock
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps --only-binary=:all: \
       -r /tmp/requirements.lock \
    && /opt/venv/bin/pip uninstall --yes pip setuptools \
    && rm /tmp/requirements.lock \
    && find /opt/venv/lib/python3.11/site-packages/botocore/data -mindepth 1 -maxdepth 1 -type d \
       ! -name s3 ! -name sqs ! -name sts ! -name sso ! -name sso-oidc -exec rm -rf {} + \
    && find /opt/venv/lib/python3.11/site-packages/botocore/data -name examples-1.json -delete

# Only the packages this image runs. Byte-compiled here (unchecked-hash: the image is immutable), because the
# runtime user cannot write next to the sources.
COPY ingest_common /app/ingest_common
COPY consumer_service /app/consumer_service
RUN python -m compileall -q --invalidation-mode unchecked-hash /app


FROM python:3.11.15-slim-bookworm@sha256:b18992999dbe963a45a8a4da40ac2b1975be1a776d939d098c647482bcad5cba AS runtime

ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=""

LABEL org.opencontainers.image.title="email-ingest-consumer" \
      org.opencontainers.image.description="email-ingest consumer: drains SQS and stores each email in S3" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.15-slim-bookworm"

# An unprivileged user with a fixed UID/GID (Kubernetes runAsNonRoot needs a numeric USER). The base image's own
# pip/setuptools/wheel are removed, with what setuptools leaves beside them (_distutils_hack and its .pth,
# pkg_resources) and the wheels ensurepip would install pip from (CPython's _bundled; Debian's python-wheels on
# a Debian-packaged Python): nothing installs packages at run time.
RUN groupadd --system --gid 10001 app \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin app \
    && rm -rf /usr/local/bin/pip* /usr/local/lib/python3.11/site-packages/pip* \
       /usr/local/lib/python3.11/site-packages/setuptools* /usr/local/lib/python3.11/site-packages/wheel* \
       /usr/local/lib/python3.11/site-packages/_distutils_hack /usr/local/lib/python3.11/site-packages/pkg_resources \
       /usr/local/lib/python3.11/site-packages/distutils-precedence.pth \
       /usr/local/lib/python3.11/ensurepip/_bundled /usr/share/python-wheels \
       /root/.cache

COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CONSUMER_HOST=0.0.0.0 \
    CONSUMER_PORT=8081

WORKDIR /app
USER 10001:10001
EXPOSE 8081

# Exec form: the interpreter is PID 1 and receives SIGTERM itself (the consumer drains on it).
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz on the health port (see the Helm chart).
ENTRYPOINT ["python", "-m", "consumer_service"]
