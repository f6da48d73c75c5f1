# The GPU worker: `finscale` with PyPI's build of PyTorch, a CUDA 13 build that brings its own
# CUDA libraries (cuBLAS, cuDNN, NCCL... as NVIDIA's pip packages): the base is the same plain
# Python as the CPU image, not a CUDA image whose libraries torch would not use. The node needs
# an NVIDIA driver for CUDA 13 (R580, >= 580.65.06; see docs/kubernetes.md); the NVIDIA container
# runtime refuses to start the container on an older one (NVIDIA_REQUIRE_CUDA below).
#
#   docker build -t ghcr.io/finscale/finscale-worker:0.1.0 .
#
# Two stages: `build` installs the locked dependencies (requirements/, torch-cuda.txt for torch)
# and then finscale into a virtual environment with scripts/install.sh, the script `make setup`
# and the tests run, bakes finscale's code identity into the installed package (the digest of its
# source files, which studies store: docs/search.md), and builds the sample datasets; the final
# stage copies only those and runs as a non-root user.
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The dependencies first: this layer (CUDA's libraries, several GB) is rebuilt only when a lock
# changes.
COPY requirements ./requirements
COPY scripts/install.sh ./scripts/
RUN scripts/install.sh cuda
COPY pyproject.toml README.md ./
COPY src ./src
COPY data/sample ./data/sample
RUN scripts/install.sh cuda . \
    && python -m finscale.identity --bake \
    && FINSCALE_DATA_DIR=/opt/finscale/data finscale data build --source sample

FROM python:3.11.11-slim-bookworm
RUN groupadd --gid 10001 finscale \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin finscale
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/finscale/data /opt/finscale/data
# The NVIDIA container runtime mounts the node's driver (compute: libcuda; utility: nvidia-smi)
# and checks that it runs CUDA 13 before starting the container.
ENV PATH=/opt/venv/bin:$PATH \
    FINSCALE_DATA_DIR=/opt/finscale/data \
    FINSCALE_DEVICE=cuda \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    NVIDIA_REQUIRE_CUDA="cuda>=13.0" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 10001:10001
WORKDIR /tmp
HEALTHCHECK NONE
ENTRYPOINT ["finscale"]
CMD ["--help"]
