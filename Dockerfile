# syntax=docker/dockerfile:1
#
# The Vigil image: one image, several roles, chosen by the command line.
#
#   docker build -t vigil:local .
#   docker run --rm vigil:local worker                          # the Faust worker
#   docker run --rm -p 8000:8000 vigil:local api --host 0.0.0.0 --port 8000
#
# docker-compose.yml builds it for the `worker` and `api` services. Settings come from VIGIL_*
# environment variables (engine/config.py); nothing is baked in.

FROM python:3.11-slim

# uv is pinned so a rebuild resolves the lock file the same way it was written.
ARG UV_VERSION=0.13.9

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install --no-cache-dir "uv==${UV_VERSION}"

WORKDIR /app

# Dependencies first, from the lock file alone: this layer is rebuilt only when
# pyproject.toml or uv.lock change, not on every source edit.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# Then the source, and the project itself (which puts the `vigil` console script in
# /app/.venv/bin). README.md is copied too: the package metadata reads it.
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev

# An unprivileged user. The code stays root-owned and read-only to it; only /app itself is
# writable, for the run-time files the worker creates in its working directory (Faust's data
# directory under ServiceSettings.run_dir, .run/).
RUN groupadd --system --gid 10001 vigil \
    && useradd --system --uid 10001 --gid vigil --create-home --home-dir /home/vigil vigil \
    && chown vigil:vigil /app

ENV PATH="/app/.venv/bin:${PATH}"

USER vigil

# 8000: API (ApiSettings.port); 9108: worker metrics (WorkerSettings.metrics_port).
EXPOSE 8000 9108

ENTRYPOINT ["vigil"]
CMD ["--help"]
