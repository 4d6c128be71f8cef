# mailqbot: runs migrations (once, however many replicas start together), then the bot
# (Socket Mode if SLACK_APP_TOKEN is set). docs/ops/running.md explains the deployment.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MAILQBOT_CONFIG=/etc/mailqbot/mailqbot.toml \
    MAILQBOT_STATE_DIR=/var/lib/mailqbot/state \
    DATABASE_URL=sqlite+aiosqlite:////var/lib/mailqbot/mailqbot.sqlite3 \
    MAILQBOT_METRICS_HOST=127.0.0.1 MAILQBOT_METRICS_PORT=9464

# The data directory belongs to the bot's user before it is declared a volume, so a new
# named volume starts out owned by that user (mode 0700: the audit key lives there).
RUN useradd --system --no-create-home --home-dir /var/lib/mailqbot --uid 10001 mailqbot \
    && install -d -o mailqbot -g mailqbot -m 0700 /var/lib/mailqbot /var/lib/mailqbot/state

WORKDIR /app
# Dependencies first, in a layer of their own: it is rebuilt only when pyproject.toml
# changes, not on every change to the code. pip compiles the bytecode here, at build time:
# with PYTHONDONTWRITEBYTECODE the running container never writes it, and without it every
# `mailqbot` command would compile SQLAlchemy, pydantic and the bot from source (seconds).
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY README.md ./
COPY bot ./bot
COPY commands ./commands
COPY migrations ./migrations
# deploy/: the sudoers snippets, wrapper and sample config, package data as bot/deploy/.
COPY deploy ./deploy
RUN pip install --no-deps .

# the user mailqbot, by number (a host resolves numbers, not this image's names)
USER 10001:10001
# The SQLite database (the default DATABASE_URL) and the state directory: the audit key
# (without it the audit chain cannot be verified) and the audit head checkpoint. Keep this
# volume, and back it up (docs/ops/backups.md). With PostgreSQL the state directory still
# lives here.
VOLUME ["/var/lib/mailqbot"]
# 3000: Slack's requests (/slack/events in HTTP mode) and /healthz; nothing else.
# Prometheus /metrics (host names, queue counts) has its own listener, 127.0.0.1:9464 inside
# the container: nothing outside the container reaches it, published or not, so 9464 is not
# EXPOSEd. For a Prometheus on the same Docker network, on purpose:
#   docker run -e MAILQBOT_METRICS_HOST=0.0.0.0 --network monitoring ... (no -p 9464)
# and scrape http://<container>:9464/metrics. MAILQBOT_METRICS_PORT=0: no metrics listener.
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=2)"]
CMD ["sh", "-c", "mailqbot migrate && exec mailqbot serve --host 0.0.0.0 --port 3000"]
