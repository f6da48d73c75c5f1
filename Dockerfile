# The GPU worker: `finscale` on a CUDA runtime with a CUDA build of PyTorch.
#
#   docker build -t ghcr.io/finscale/finscale-worker:0.1.0 .
#
# Two stages: `build` installs PyTorch and the project's wheel into a virtual environment and
# builds the sample datasets; the final stage copies only those onto a clean CUDA runtime and
# runs as a non-root user. The install steps are the Makefile's: the pinned torch first, then
# finscale.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS build
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# DL3008: the distribution's Python is pinned by the base image tag; apt versions change underneath.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY data/sample ./data/sample
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && pip install /wheels/finscale-*.whl \
    && FINSCALE_DATA_DIR=/opt/finscale/data finscale data build --source sample

FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ENV DEBIAN_FRONTEND=noninteractive
# DL3008: as above; only the interpreter is installed (no compiler, no pip).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 finscale \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin finscale
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/finscale/data /opt/finscale/data
ENV PATH=/opt/venv/bin:$PATH \
    FINSCALE_DATA_DIR=/opt/finscale/data \
    FINSCALE_DEVICE=cuda \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 10001:10001
WORKDIR /tmp
HEALTHCHECK NONE
ENTRYPOINT ["finscale"]
CMD ["--help"]
