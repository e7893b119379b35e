# funnelbot: bot, scheduler tick and HTTP API in one process.
#   docker build -t funnelbot .
#   docker run -e FUNNELBOT_BOT_TOKEN=… -p 8080:8080 -v funnelbot-data:/data funnelbot
# Without FUNNELBOT_DATABASE_URL it keeps its SQLite database in /data (mount a volume
# there). docker-compose.yml runs it on PostgreSQL and Redis in webhook mode.

# Python 3.11 on Debian 12, pinned by tag and by the digest of the tag's multi-platform
# index, so that a rebuild starts from the same base. Move the two together.
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin funnelbot \
    && mkdir /data \
    && chown 10001:10001 /data

WORKDIR /src
# The locked dependencies in a layer of their own, which a change to the code leaves
# cached; every file is checked against the hashes in the lock.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
# funnelbot itself: what it needs is in place, and the locked setuptools builds it.
COPY pyproject.toml README.md ./
COPY funnels ./funnels
COPY storage ./storage
COPY migrations ./migrations
COPY bot ./bot
RUN pip install --no-deps --no-build-isolation . \
    && rm -rf /src

WORKDIR /data
USER 10001:10001

ENV FUNNELBOT_HTTP_HOST=0.0.0.0 \
    FUNNELBOT_HTTP_PORT=8080 \
    FUNNELBOT_DATABASE_URL=sqlite+aiosqlite:////data/funnelbot.db
EXPOSE 8080

# Ready, not only alive: /readyz answers 503 while the database, or Redis when it is
# set, cannot be reached.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('FUNNELBOT_HTTP_PORT', '8080'), timeout=4)"]

CMD ["funnelbot", "run"]
