# zen-flow controller + admission webhook image: `docker build -t zen-flow .`
#
# Two stages. The first builds a virtualenv with the project and its dependencies (all of them
# ship binary wheels, so no compiler is needed even there); the second copies only that venv
# onto the same slim base, so pip's caches, the sources and any build tooling stay behind.
# Both stages use the same base so the venv's interpreter path (/usr/local/bin/python3.11)
# exists in the final image.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/zen-flow
WORKDIR /src
# Dependencies first (only pyproject.toml), so a source change does not re-download them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb')); print('\n'.join(d['project']['dependencies']))" > /tmp/requirements.txt \
 && /opt/zen-flow/bin/pip install --only-binary=:all: -r /tmp/requirements.txt
COPY jobflow ./jobflow
COPY webhook ./webhook
COPY controller ./controller
COPY app ./app
COPY kubesim ./kubesim
COPY certs ./certs
# Byte-compile now: the container's root filesystem is read-only at run time.
RUN /opt/zen-flow/bin/pip install --no-deps . \
 && /opt/zen-flow/bin/python -m compileall -q /opt/zen-flow/lib \
 && /opt/zen-flow/bin/pip uninstall -y pip setuptools wheel

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="zen-flow" \
      org.opencontainers.image.description="JobFlow controller and admission webhook" \
      org.opencontainers.image.source="https://github.com/kube-zen/zen-flow" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/zen-flow/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ZEN_FLOW_LOG_FORMAT=json
# The base image's packaging tools are not needed at run time either.
RUN python -m pip uninstall -y pip setuptools wheel
COPY --from=build /opt/zen-flow /opt/zen-flow
# A numeric non-root user (65532, "nonroot" in distroless) so runAsNonRoot can verify it.
USER 65532:65532
WORKDIR /tmp
# 9443: HTTPS admission webhook; 8080: /healthz, /readyz, /metrics.
EXPOSE 9443 8080
ENTRYPOINT ["/opt/zen-flow/bin/zen-flow"]
CMD ["serve"]
