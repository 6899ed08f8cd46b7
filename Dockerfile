# Operator's image: the web service by default; the worker is the same image with
#   docker run ... operator flask --app app worker
# Settings come from the environment (docker run --env-file operator.env); docs/operations.md, Docker.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/operator

# The lock alone first, so the dependency layer is rebuilt only when the lock changes. Every
# package is the locked version and must match its hash (--require-hashes): the image gets
# exactly what CI tested.
COPY requirements.lock ./
# Installed as the Makefile's install step does (docs/adr/0003-uv-lock-files.md): the lock lists
# every package, so --no-deps, and pip check proves it whole.
RUN python -m venv /opt/operator/.venv \
    && /opt/operator/.venv/bin/python -m pip install --no-cache-dir --no-deps --require-hashes -r requirements.lock \
    && /opt/operator/.venv/bin/python -m pip check

COPY . .
RUN useradd --system --user-group --home-dir /var/lib/operator --create-home operator-sms

USER operator-sms
# In a container the published port is the boundary, so gunicorn listens on every address.
ENV PATH=/opt/operator/.venv/bin:$PATH \
    BIND_ADDRESS=0.0.0.0 \
    PORT=5000 \
    DATABASE_URL=sqlite:////var/lib/operator/operator.db \
    LOG_DIR=/var/lib/operator/logs \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-multiproc
VOLUME /var/lib/operator
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/healthz', timeout=4)"
CMD ["gunicorn", "-c", "/opt/operator/production.py", "app:create_app()"]
