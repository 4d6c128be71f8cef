# mailqbot: runs migrations, then the bot (Socket Mode if SLACK_APP_TOKEN is set).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    MAILQBOT_CONFIG=/etc/mailqbot/mailqbot.toml \
    DATABASE_URL=sqlite+aiosqlite:////var/lib/mailqbot/mailqbot.sqlite3 \
    MAILQBOT_METRICS_HOST=127.0.0.1 MAILQBOT_METRICS_PORT=9464

RUN useradd --system --create-home --home-dir /var/lib/mailqbot --uid 10001 mailqbot

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY commands ./commands
COPY migrations ./migrations
RUN pip install --no-compile . && rm -rf /root/.cache

USER mailqbot
# 3000: Slack's requests (/slack/events in HTTP mode) and /healthz; nothing else.
# Prometheus /metrics (host names, queue counts) has its own listener, 127.0.0.1:9464 inside
# the container: nothing outside the container reaches it, published or not, so 9464 is not
# EXPOSEd. For a Prometheus on the same Docker network, on purpose:
#   docker run -e MAILQBOT_METRICS_HOST=0.0.0.0 --network monitoring ... (no -p 9464)
# and scrape http://<container>:9464/metrics. MAILQBOT_METRICS_PORT=0: no metrics listener.
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=2)" || exit 1
CMD ["sh", "-c", "mailqbot migrate && exec mailqbot serve --host 0.0.0.0 --port 3000"]
