# funnelbot: bot, scheduler tick and HTTP API in one process.
#   docker build -t funnelbot .
#   docker run -e FUNNELBOT_BOT_TOKEN=… -p 8080:8080 -v funnelbot-data:/data funnelbot
# Without FUNNELBOT_DATABASE_URL it keeps its SQLite database in the /data volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin funnelbot \
    && mkdir /data \
    && chown funnelbot:funnelbot /data

WORKDIR /src
COPY pyproject.toml README.md ./
COPY funnels ./funnels
COPY storage ./storage
COPY migrations ./migrations
COPY bot ./bot
RUN pip install . && rm -rf /src

WORKDIR /data
USER funnelbot

ENV FUNNELBOT_HTTP_HOST=0.0.0.0 \
    FUNNELBOT_HTTP_PORT=8080 \
    FUNNELBOT_DATABASE_URL=sqlite+aiosqlite:////data/funnelbot.db
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c 'import os, urllib.request; urllib.request.urlopen("http://127.0.0.1:%s/healthz" % os.environ.get("FUNNELBOT_HTTP_PORT", "8080"), timeout=4)' || exit 1

CMD ["funnelbot", "run"]
