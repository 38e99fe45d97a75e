# What the three job images share: Python, the tilebatch package with its pinned
# requirements, the job configuration, a non-root user. docker/image.mk builds it
# from the repository top (the context must hold py/, config.yaml and
# docker/job-entrypoint) and each job image adds its own command on top.
# BASE_IMAGE (config.mk) is Docker Hub's Python, or where that cannot be pulled
# the stand-in `make base-image` builds from Debian packages.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# GNU time reports a job's peak memory as one JSON log line when the job ends,
# even when the job dies before it can log it itself (out of memory, killed).
RUN apt-get update \
    && apt-get install -y --no-install-recommends time=1.9-0.2 \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The pinned requirements first, so that a code change does not reinstall them.
COPY py/requirements.txt /opt/tilebatch/py/requirements.txt
RUN pip install --no-cache-dir -r /opt/tilebatch/py/requirements.txt
COPY docker/job-entrypoint /usr/local/bin/tilebatch-job
COPY config.yaml /etc/tilebatch/config.yaml
RUN useradd --create-home --uid 10001 tilebatch
# The code last: a change to it rebuilds only these two steps.
COPY py/ /opt/tilebatch/py/
RUN pip install --no-cache-dir --no-deps /opt/tilebatch/py

# By number: a runtime that cannot read /etc/passwd still runs it as non-root.
USER 10001
WORKDIR /home/tilebatch

ENTRYPOINT ["/usr/local/bin/tilebatch-job"]
CMD ["tilebatch", "--help"]
