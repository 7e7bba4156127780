# The project's own image: the `cqrs-bench` command (provision, serve, project run, run) and
# Locust, for the services of docker-compose.yml. PostgreSQL runs in the official postgres image.
#
#   docker build -t cqrs-bench:local .
#   docker run --rm cqrs-bench:local --help
#   docker run --rm --entrypoint locust cqrs-bench:local -f workloads/locustfile.py --worker ...
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg \
    CQRS_BENCH_HOME=/tmp/cqrs-bench

WORKDIR /app

# Dependencies first, so that a code change does not reinstall them: install the project's
# dependency list from pyproject.toml alone (a stub package), then the project itself.
COPY pyproject.toml README.md ./
RUN mkdir -p harness implementations workloads \
    && touch harness/__init__.py implementations/__init__.py workloads/__init__.py \
    && pip install . \
    && pip uninstall -y cqrs-bench \
    && rm -rf build *.egg-info harness implementations workloads

# The project: the packages with their package data (implementations/**/*.sql,
# workloads/mixes/*.toml, workloads/shapes/*.toml). The source tree stays in /app as well, so that
# `locust -f workloads/locustfile.py` (the Locust workers) finds the locustfile from WORKDIR.
COPY . .
RUN pip install --no-deps . && rm -rf build *.egg-info

ENTRYPOINT ["cqrs-bench"]
CMD ["--help"]
