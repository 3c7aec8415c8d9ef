# syntax=docker/dockerfile:1
# One image for every service: the command chooses it (`ledgerctl serve gateway|ledger|query|
# projector`, `ledgerctl db migrate`). One image because the four services are one Python
# distribution (learner-ledger) sharing one dependency set: one build, one scan, one tag to
# promote, and a migration Job that always matches the code it migrates for.
#
#   docker build -t registry.example.com/learnerledger/learner-ledger:0.1.0 .
#
# Stages: `proto-check` fails the build when the committed generated code in
# common/learnerledger/v1/ is stale against proto/ (scripts/gen_proto.py --check, pinned
# grpcio-tools + mypy-protobuf); `build` installs the project and its pinned dependencies into
# /opt/venv (compilers live here only); the final stage copies that venv onto a slim base
# without compilers and runs as an unprivileged user. No HEALTHCHECK: Kubernetes probes the
# services' grpc.health.v1 endpoints natively (deploy/k8s/).
# Pinned by digest (a tag can be re-pushed; the digest names exactly one image). Renew both
# together: `crane digest python:3.11-slim-bookworm` (or `docker buildx imagetools inspect`).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS proto-check
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY constraints.txt ./
RUN pip install -c constraints.txt grpcio-tools mypy-protobuf protobuf
COPY proto/ proto/
COPY scripts/gen_proto.py scripts/
COPY common/learnerledger/v1/ common/learnerledger/v1/
RUN python scripts/gen_proto.py --check && touch /proto-check.ok

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
# Compilers only for the rare dependency without a wheel for this platform; never shipped.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential=12.9 \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first (cached while only the sources change).
COPY pyproject.toml constraints.txt README.md LICENSE ./
RUN python -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && pip install -c constraints.txt -r /tmp/requirements.txt
COPY common/ common/
COPY services/ services/
# Only the CLI: tools/devstack (the local development stack) never enters the image.
COPY tools/ledgerctl/ tools/ledgerctl/
COPY --from=proto-check /proto-check.ok /tmp/proto-check.ok
RUN pip install --no-deps -c constraints.txt . \
 && ledgerctl --help >/dev/null

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="learner-ledger" \
      org.opencontainers.image.description="Learner Ledger services: ledgerctl serve gateway|ledger|query|projector" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    METRICS_BIND_ADDRESS=0.0.0.0
RUN groupadd --system --gid 10001 learnerledger \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin learnerledger
COPY --from=build /opt/venv /opt/venv
WORKDIR /tmp
USER 10001:10001
# gRPC: gateway 50051, query 50052, ledger admin 50053, projector health 50054.
# Prometheus: gateway 9101, ledger 9102, query 9103, projector 9104.
EXPOSE 50051 50052 50053 50054 9101 9102 9103 9104
ENTRYPOINT ["ledgerctl"]
CMD ["--help"]
