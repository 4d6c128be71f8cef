# mailqbot: runs migrations, then the bot (Socket Mode if SLACK_APP_TOKEN is set).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    MAILQBOT_CONFIG=/etc/mailqbot/mailqbot.toml \
    DATABASE_URL=sqlite+aiosqlite:////var/lib/mailqbot/mailqbot.sqlite3

RUN useradd --system --create-home --home-dir /var/lib/mailqbot --uid 10001 mailqbot

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY commands ./commands
COPY migrations ./migrations
# deploy/: the sudoers snippets, wrapper and sample config, package data as bot/deploy/.
COPY deploy ./deploy
RUN pip install --no-compile . && rm -rf /root/.cache

USER mailqbot
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=2)" || exit 1
CMD ["sh", "-c", "mailqbot migrate && exec mailqbot serve --host 0.0.0.0 --port 3000"]
