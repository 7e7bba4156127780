"""docker-compose.yml and the Dockerfile, checked offline (no Docker engine needed).

- The compose file validates against the Compose specification's JSON schema (check-jsonschema's
  vendored copy, so nothing is downloaded).
- Every command a service runs parses with the real command line: `cqrs-bench ...` with the Typer
  app's Click commands, the Locust worker with Locust's own parser and the project's locustfile,
  after `${VAR:-default}` interpolation with the defaults.
- The services of one architecture agree with each other (database name, DSNs, the API URL, the
  Locust master's name and port, the number of workers), the PostgreSQL servers run with the
  settings of harness/postgres/server.py, host ports are non-default, and every service has an image.

Locust is parsed in a subprocess: importing it monkey-patches the test process for gevent.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
import yaml

from harness.cli import app as cli
from harness.deploy.service import SERVICE_WORKERS
from harness.postgres.server import SETTINGS
from implementations import registry

try:  # Typer 0.2x carries its own copy of Click, whose errors derive from TyperException
    from typer import TyperException as CommandLineError
except ImportError:  # older Typer uses Click itself
    from click import ClickException as CommandLineError

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROJECT_IMAGE = "cqrs-bench:local"
WRITE_DB, READ_DB = "write-db", "read-db"
RUNNER_ALIAS, MASTER_PORT, API_PORT = "runner", 5557, 8000
# Ports a developer's own services are likely to hold: published host ports must avoid them.
DEFAULT_PORTS = {80, 443, 3000, 5000, 5432, 5433, 5557, 5558, 8000, 8001, 8080, 8089, 8888}

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}, ${VAR:+alt}, $VAR; $$ escapes.
INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value, env: dict[str, str] | None = None):
    """`value` (from the parsed YAML) as Compose would see it with `env` (default: none set)."""
    env = env or {}
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["named"]
        op, arg, current = m["op"], m["arg"], env.get(name)
        if op in (":-", "-"):
            return arg if current is None or (op == ":-" and current == "") else current
        if op in (":?", "?"):
            if current is None or (op == ":?" and current == ""):
                raise AssertionError(f"${{{name}}} must be set: {arg}")
            return current
        if op in (":+", "+"):
            return arg if current else ""
        if current is None:
            raise AssertionError(f"${name} has no default: Compose would substitute ''")
        return current

    return INTERPOLATION.sub(one, value)


@pytest.fixture(scope="module")
def raw() -> dict:
    assert COMPOSE.is_file(), "docker-compose.yml is missing"
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose(raw: dict) -> dict:
    return interpolate(raw)


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def dockerfile_instruction(name: str) -> list[str]:
    """Arguments of the last `name` instruction (JSON or shell form) of the Dockerfile."""
    found = None
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        word, _, rest = line.strip().partition(" ")
        if word.upper() == name:
            rest = rest.strip()
            found = json.loads(rest) if rest.startswith("[") else rest.split()
    assert found is not None, f"the Dockerfile has no {name}"
    return found


def argv(service: dict) -> list[str]:
    """What the service's container executes: entrypoint + command (the image's when unset)."""
    built = "build" in service and service.get("image") == PROJECT_IMAGE
    entrypoint = service.get("entrypoint")
    if entrypoint is None:
        entrypoint = dockerfile_instruction("ENTRYPOINT") if built else []
    command = service.get("command")
    if command is None:
        command = dockerfile_instruction("CMD") if built else []
    for part in (entrypoint, command):
        assert isinstance(part, list), f"use the list form (no shell): {part!r}"
    return [str(a) for a in [*entrypoint, *command]]


def options(args: list[str]) -> dict[str, str | bool]:
    """`--name value` and bare `--flag` pairs of a command line (`value` True for flags)."""
    found: dict[str, str | bool] = {}
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            following = args[i + 1] if i + 1 < len(args) else None
            found[arg] = (
                following if following is not None and not following.startswith("--") else True
            )
    return found


def parse_with_cli(args: list[str]):
    """`cqrs-bench args...` parsed by the real command line, as far as Click goes without running
    the command: an unknown command or option, a bad value or a missing argument raises
    CommandLineError. Returns the command's context (its `params`)."""
    command = typer.main.get_command(cli.app)
    ctx = command.context_class(command, info_name="cqrs-bench")
    rest = list(args)
    while hasattr(command, "list_commands"):  # a group: the next word names a subcommand
        assert rest, f"cqrs-bench {' '.join(args)}: no subcommand"
        name, *rest = rest
        sub = command.get_command(ctx, name)
        assert sub is not None, (
            f"cqrs-bench has no command {' '.join(args[: len(args) - len(rest)])!r}"
        )
        command = sub
        ctx = command.context_class(command, info_name=name, parent=ctx)
    return command.make_context(ctx.info_name, rest, parent=ctx.parent)


LOCUST_PARSE = """
import json, sys
from locust.argument_parser import get_locustfiles_locally, get_parser, parse_locustfile_option
from locust.main import merge_locustfiles_content

args = json.loads(sys.argv[1])
# As locust.main.main does: find the locustfile, import it (its options join the parser), parse.
files = get_locustfiles_locally(parse_locustfile_option(args))
merge_locustfiles_content(files)
options = get_parser().parse_args(args)
print(json.dumps({"locustfile": options.locustfile, "worker": options.worker,
                  "master_host": options.master_host, "master_port": options.master_port}))
"""


def parse_with_locust(args: list[str]) -> dict:
    """`locust args...` parsed by Locust in a fresh process run from the checkout, as from the
    image's WORKDIR (where the Dockerfile copies the checkout)."""
    done = subprocess.run(
        [sys.executable, "-c", LOCUST_PARSE, json.dumps(args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"locust {' '.join(args)}:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def needs_projector(impl: str) -> bool:
    return registry.architecture(impl).projection


def background(impl: str) -> dict[str, list[str]]:
    """The background processes `impl` needs as services of their own: role -> its command."""
    found = {}
    if needs_projector(impl):
        found["projector"] = ["project", "run"]
    if registry.architecture(impl).refresher:
        found["refresher"] = ["refresh", "run"]
    return found


def host_ports(service: dict) -> list[tuple[str | None, int, int]]:
    """(host address, host port, container port) of each published port."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.append((port.get("host_ip"), int(port["published"]), int(port["target"])))
            continue
        parts = str(port).split("/")[0].split(":")
        assert len(parts) in (2, 3), f"publish a fixed host port, not {port!r}"
        host_ip = parts[0] if len(parts) == 3 else None
        found.append((host_ip, int(parts[-2]), int(parts[-1])))
    return found


# --- the Compose specification ----------------------------------------------------------------

OFFLINE = {  # any download would go through a proxy that is not there, and fail
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "",
}


def check_compose_schema(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **OFFLINE},
    )


def test_compose_file_validates_against_the_compose_specification_offline():
    done = check_compose_schema(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_rejects_what_the_specification_does_not_allow(tmp_path: Path):
    """The validation has teeth: a misspelt key and an unknown depends_on condition fail."""
    text = COMPOSE.read_text(encoding="utf-8")
    for bad in (
        text.replace(
            "    healthcheck: *api-healthcheck\n", "    healthcheks: *api-healthcheck\n", 1
        ),
        text.replace("condition: service_completed_successfully", "condition: done", 1),
    ):
        assert bad != text
        path = tmp_path / "docker-compose.yml"
        path.write_text(bad, encoding="utf-8")
        done = check_compose_schema(path)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Schema validation errors" in done.stdout + done.stderr


# --- commands ---------------------------------------------------------------------------------


def _cqrs_bench_services() -> list[str]:
    services = interpolate(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")))["services"]
    return [name for name, service in services.items() if argv(service)[:1] == ["cqrs-bench"]]


@pytest.mark.parametrize("name", _cqrs_bench_services())
def test_every_cqrs_bench_command_parses_with_the_cli(services: dict, name: str):
    args = argv(services[name])[1:]
    try:
        parse_with_cli(args)
        problem = None
    except CommandLineError as exc:
        problem = exc.format_message()
    assert problem is None, f"{name}: cqrs-bench {' '.join(args)}\n{problem}"


def test_every_architecture_has_its_commands():
    names = set(_cqrs_bench_services())
    for impl in registry.names():
        roles = ["provision", "api", "runner", *background(impl)]
        assert {f"{role}-{impl}" for role in roles} <= names, impl


def test_the_command_line_check_has_teeth():
    """Known commands parse; an unknown option, command or bad value does not."""
    params = parse_with_cli(["project", "run", "--impl", "cqrs-logical", "--database", "x"]).params
    assert params["impl"] == "cqrs-logical" and params["database"] == "x"
    assert parse_with_cli(["serve", "--port", "8000"]).params["port"] == 8000
    for bad in (
        ["serve", "--no-such-option", "1"],
        ["serve", "--port", "eighty"],
        ["run", "--duration", "0"],
        ["project", "rum"],
    ):
        with pytest.raises((CommandLineError, AssertionError)):
            parse_with_cli(bad)


def test_every_project_container_runs_cqrs_bench_or_locust(services: dict):
    for name, service in services.items():
        if service.get("image") == PROJECT_IMAGE:
            assert argv(service)[0] in ("cqrs-bench", "locust"), name


def test_the_locust_worker_command_parses_with_locust(services: dict):
    worker = services["locust-worker"]
    args = argv(worker)
    assert args[0] == "locust"
    parsed = parse_with_locust(args[1:])
    assert parsed["worker"] is True
    assert parsed["master_host"] == RUNNER_ALIAS and parsed["master_port"] == MASTER_PORT
    assert (ROOT / parsed["locustfile"]).is_file()


def test_each_architecture_is_wired_together(services: dict):
    write_dsn = f"postgresql://postgres:cqrs-bench@{WRITE_DB}:5432/postgres"
    read_dsn = f"postgresql://postgres:cqrs-bench@{READ_DB}:5432/postgres"
    for impl in registry.names():
        read = read_dsn if impl == "cqrs-physical" else write_dsn  # crud, logical: one server
        roles = ["provision", "api", "runner", *background(impl)]
        commands = {role: argv(services[f"{role}-{impl}"])[1:] for role in roles}
        assert commands["provision"][0] == "provision"
        assert commands["api"][0] == "serve"
        assert commands["runner"][0] == "run"
        for role, command in background(impl).items():
            assert commands[role][:2] == command, (role, impl)
        database = options(commands["provision"])["--name"]
        for role, args in commands.items():
            opts = options(args)
            assert services[f"{role}-{impl}"].get("profiles") == [impl], (role, impl)
            assert opts["--impl"] == impl, (role, impl)
            assert opts["--write-dsn"] == write_dsn, (role, impl)
            assert opts["--read-dsn"] == read, (role, impl)
            if role != "provision":
                assert opts["--database"] == database, (role, impl)
        api = options(commands["api"])
        assert api["--host"] == "0.0.0.0" and api["--port"] == str(API_PORT)
        runner = options(commands["runner"])
        assert runner["--service-url"] == f"http://api-{impl}:{API_PORT}"
        assert runner["--master-port"] == str(MASTER_PORT) and runner["--external-workers"] is True
        assert runner["--results"] == "/results"
        assert runner["--locust-workers"] == str(services["locust-worker"]["scale"])
        aliases = services[f"runner-{impl}"]["networks"]["default"]["aliases"]
        assert RUNNER_ALIAS in aliases
        assert impl in services["locust-worker"]["profiles"]


def test_services_start_in_order(services: dict):
    for impl in registry.names():
        provision = services[f"provision-{impl}"]["depends_on"]
        assert provision[WRITE_DB]["condition"] == "service_healthy"
        if impl == "cqrs-physical":
            assert provision[READ_DB]["condition"] == "service_healthy"
        started_after = [f"api-{impl}"] + [f"{role}-{impl}" for role in background(impl)]
        for name in started_after:
            condition = services[name]["depends_on"][f"provision-{impl}"]["condition"]
            assert condition == "service_completed_successfully", name
        runner = services[f"runner-{impl}"]["depends_on"]
        assert runner[f"api-{impl}"]["condition"] == "service_healthy"
        for role in background(impl):
            assert f"{role}-{impl}" in runner, (role, impl)
        assert "healthcheck" in services[f"api-{impl}"]


def test_results_are_written_to_the_host(services: dict):
    for impl in registry.names():  # workers write nothing: their results travel to the runner
        assert "./results:/results" in services[f"runner-{impl}"]["volumes"], impl


# --- PostgreSQL ---------------------------------------------------------------------------------


def server_settings(service: dict) -> dict[str, str]:
    args = argv(service)
    assert args[0] == "postgres", "run the server with its settings on the command line"
    found = {}
    for flag, setting in zip(args[1::2], args[2::2], strict=True):
        assert flag == "-c", args
        key, _, value = setting.partition("=")
        found[key] = value
    return found


@pytest.mark.parametrize("name", [WRITE_DB, READ_DB])
def test_postgres_runs_with_the_settings_measurements_need(compose: dict, name: str):
    services = compose["services"]
    service = services[name]
    assert re.fullmatch(r"postgres:\d+(\.\d+)?", service["image"]), "the official image"
    settings = server_settings(service)
    for key, value in SETTINGS.items():
        if key == "listen_addresses":  # the image listens on all its container's addresses
            continue
        assert settings.get(key) == value.strip("'"), key
    assert "pg_isready" in " ".join(service["healthcheck"]["test"])
    assert service["environment"]["POSTGRES_PASSWORD"] == "cqrs-bench"
    # PGDATA is in a named volume; each runner mounts it read-only at the same path, where the
    # server's log file is (logging_collector, log_directory inside PGDATA): the lock_waits table.
    assert settings["logging_collector"] == "on" and not settings["log_directory"].startswith("/")
    volume, mount = service["volumes"][0].split(":")[:2]
    assert volume in compose["volumes"]
    assert service["environment"]["PGDATA"].startswith(mount + "/")
    for impl in registry.names():
        assert f"{volume}:{mount}:ro" in services[f"runner-{impl}"]["volumes"]


# --- ports, images, the Dockerfile ---------------------------------------------------------------


def test_published_host_ports_are_not_defaults(services: dict):
    users: dict[int, set[str]] = {}
    for name, service in services.items():
        for host_ip, host, _container in host_ports(service):
            assert host not in DEFAULT_PORTS and host >= 10000, f"{name}: host port {host}"
            assert host_ip == "127.0.0.1", f"{name}: publish on 127.0.0.1 unless CQRS_BIND says"
            users.setdefault(host, set()).add(name)
    for host, names in users.items():
        # Only the runners share one (the Locust master's): their profiles never run together.
        assert len(names) == 1 or all(n.startswith("runner-") for n in names), (host, names)
    assert {15432, 15433} <= set(users)
    assert {host for _ip, host, _c in host_ports(services["api-crud"])} == {18001}


def test_every_service_has_an_image_and_the_project_image_is_built_from_the_dockerfile(
    services: dict,
):
    for name, service in services.items():
        assert service.get("image") or service.get("build"), name
        if service.get("image") == PROJECT_IMAGE:
            build = service["build"]
            assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE, name
    assert any(s.get("image") == PROJECT_IMAGE for s in services.values())


def test_dockerfile_builds_the_cqrs_bench_image():
    assert DOCKERFILE.is_file()
    assert dockerfile_instruction("FROM") == ["python:3.11-slim"]
    assert dockerfile_instruction("ENTRYPOINT") == ["cqrs-bench"]
    workdir = dockerfile_instruction("WORKDIR")[0]
    assert dockerfile_instruction("COPY") == [".", "."], "the whole (filtered) checkout"
    assert "pip install --no-deps ." in DOCKERFILE.read_text(encoding="utf-8")
    assert workdir == "/app"
    # The Locust workers run `-f workloads/locustfile.py` from WORKDIR; the mixes, shapes and
    # schemas are package data. Nothing they need may be left out of the build context.
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    for needed in ("workloads", "harness", "implementations", "pyproject.toml", "README.md"):
        assert needed not in ignored
    for unwanted in (".venv", ".work", "results", ".git"):
        assert unwanted in ignored
    assert {"**/__pycache__", "__pycache__"} & ignored


def test_one_variable_sets_the_workers_and_the_number_the_runner_waits_for(raw: dict):
    services = interpolate(raw, {"CQRS_WORKERS": "4"})["services"]
    assert str(services["locust-worker"]["scale"]) == "4"
    for impl in registry.names():
        assert options(argv(services[f"runner-{impl}"]))["--locust-workers"] == "4"


def test_one_variable_scales_every_api_service(raw: dict):
    """CQRS_SERVICE_WORKERS is every API service's `serve --workers`, by default the harness's
    own default (the runner's --service-workers)."""
    for env, workers in (({}, str(SERVICE_WORKERS)), ({"CQRS_SERVICE_WORKERS": "3"}, "3")):
        services = interpolate(raw, env)["services"]
        for impl in registry.names():
            args = argv(services[f"api-{impl}"])[1:]
            assert options(args)["--workers"] == workers, (impl, env)
            assert parse_with_cli(args).params["workers"] == int(workers), (impl, env)


def test_a_standby_streams_from_the_write_server_for_the_architectures_that_read_one(
    compose: dict,
):
    services = compose["services"]
    readers = [a.name for a in registry.architectures().values() if a.reads_standby]
    standby = services["standby-db"]
    script = " ".join(standby["entrypoint"])
    assert "pg_basebackup -h write-db" in script and " -R " in script  # standby.signal, conninfo
    assert standby["depends_on"][WRITE_DB]["condition"] == "service_healthy"
    # the write server's settings (the standby's come from its base backup) allow streaming
    write = server_settings(services[WRITE_DB])
    assert write["wal_level"] == "replica" and int(write["max_wal_senders"]) > 0
    assert any("allow-replication" in v for v in services[WRITE_DB]["volumes"])
    replica_dsn = "postgresql://postgres:cqrs-bench@standby-db:5432/postgres"
    for impl in readers:
        assert standby["profiles"] == readers
        for role in ("provision", "api", "runner"):
            assert options(argv(services[f"{role}-{impl}"])[1:])["--replica-dsn"] == replica_dsn
