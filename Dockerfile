# syntax=docker/dockerfile:1
# The one CandleGraph image: `candlegraph serve | flow | simulate`, chosen by the command
# (see docker-compose.yml). Python's version is .python-version's; every dependency is the
# version requirements.lock pins, checked against its hashes, then the project itself installs
# without resolving anything (`pip install --no-deps .`; tests/test_compose.py checks both).
ARG PYTHON_VERSION=3.12
FROM python:${PYTHON_VERSION}-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY market ./market
COPY db ./db
COPY flows ./flows
COPY strategies ./strategies
COPY graphql_schema ./graphql_schema
COPY server ./server
# Every dependency ships a manylinux wheel for CPython 3.12, so no compiler is needed.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --require-hashes -r requirements.lock \
    && pip install --no-deps . \
    && pip check \
    && rm -rf /src

RUN useradd --system --uid 10001 --home-dir /data candlegraph \
    && mkdir -p /data \
    && chown candlegraph /data
USER candlegraph
WORKDIR /data
ENV CANDLEGRAPH_DATA_DIR=/data \
    CANDLEGRAPH_HOST=0.0.0.0
EXPOSE 8000

ENTRYPOINT ["candlegraph"]
CMD ["serve"]
