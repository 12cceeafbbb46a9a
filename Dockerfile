# runq: one image for every role (worker, gateway, Flower, metrics, sandbox); the
# compose file picks the role with `command:`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY . /src
# Every extra (this image plays every role), at the versions CI passed with.
RUN pip install -c requirements/lock.txt '.[all]' \
    && rm -rf /src/build

# Never run workers as root (Celery warns, and a tool bug must not own the container).
RUN groupadd --system --gid 10001 runq \
    && useradd --system --uid 10001 --gid runq --create-home --home-dir /home/runq runq
USER runq
WORKDIR /home/runq
# The example tools (not part of the package): workers import RUNQ_TOOL_MODULES from
# their working folder, so `examples.tools` works here; mount your own tools the same way.
COPY --chown=runq:runq examples/__init__.py /home/runq/examples/__init__.py
COPY --chown=runq:runq examples/tools /home/runq/examples/tools
COPY --chown=runq:runq examples/data /home/runq/examples/data

# Logs are JSON lines on stderr, for the log stack to ingest.
ENV RUNQ_LOG_FORMAT=json \
    RUNQ_HOME=/home/runq/.runq

# gateway, Flower, metrics, sandbox
EXPOSE 8000 5555 9808 8765

CMD ["runq", "--help"]
