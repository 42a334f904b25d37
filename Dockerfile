# cofre: one image for every role; the command picks it:
#   cofre ...                      the CLI
#   python -m cofre.manager        the manager
#   python -m cofre.storage_node   a storage node
#   python -m cofre.operator       the Kubernetes operator
# Runs as uid 65532 with a read-only root filesystem: writes go to mounted volumes or /tmp.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/cofre
WORKDIR /src
# Dependencies first, every one pinned (constraints.txt locks the transitive ones too), so code
# changes reuse this layer.
COPY pyproject.toml README.md constraints.txt ./
RUN mkdir cofre && touch cofre/__init__.py \
    && /opt/cofre/bin/pip install -c constraints.txt . \
    && /opt/cofre/bin/pip uninstall -y cofre
COPY cofre ./cofre
RUN /opt/cofre/bin/pip install --no-deps .

FROM python:3.11-slim-bookworm
# A named user: some libraries (kopf, getpass) look the uid up.
RUN echo "cofre:x:65532:65532:cofre:/tmp:/usr/sbin/nologin" >> /etc/passwd \
    && echo "cofre:x:65532:" >> /etc/group
COPY --from=build /opt/cofre /opt/cofre
ENV PATH=/opt/cofre/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
WORKDIR /tmp
CMD ["cofre", "--help"]
