"""deploy/docker-compose.yml, brought up for real with Debian's docker-compose: PostgreSQL,
the registry, three grader replicas and the sandbox, from locally built images.

The images come from scripts/build_stack_images.sh (run here when they are missing; CI runs
it beforehand). Everything the test starts is one compose project, removed with `down -v`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest
from mleb.client import Client
from mleb.registry.v1 import registry_pb2
from mleb.sandbox.v1 import sandbox_pb2
from mleb.sandbox.v1 import sandbox_service_pb2 as sandbox_pb

from services.builtin.catalog import DEMO_COMPETITION
from services.cli.probe import probe
from services.common.auth import Role, TokenAuthority
from services.demo import docker_agent_image
from services.grader.scoring import VALID_MESSAGE
from services.sandbox.lifecycle.core import INSTANCE_LABEL
from tests.conftest import TEST_AUTH_SECRET, require_or_skip
from tests.fixtures.registry_trees import build_own_competition
from tests.fixtures.sandbox_docker import docker_client as connect_docker

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "deploy" / "docker-compose.yml"
SERVER_IMAGE = "mleb-server"
POSTGRES_IMAGE = "mleb-test-postgres"
BASE_IMAGES = ("mleb-base-python", POSTGRES_IMAGE)
# Built by scripts/build_test_images.sh: the sandbox's network sidecar and an agent image.
SANDBOX_IMAGES = ("mleb-sidecar", "mleb-test-python")
GRADERS = 3
COMPETITION = "compose-demo"
# Higher is better; 3 teams: a perfect submission is gold.
LEADERBOARD = "team_name,score\nA,0.9\nB,0.8\nC,0.5\n"
ANSWERS = "id,label\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(20))
HEALTH_TIMEOUT_S = 240.0
ACTIVE = (sandbox_pb2.SANDBOX_STATE_PENDING, sandbox_pb2.SANDBOX_STATE_RUNNING)


def _has_image(client: docker.DockerClient, name: str) -> bool:
    return bool(client.images.list(name=name))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ComposeStack:
    project: str
    env: dict[str, str]
    services: list[str]

    def _run(self, args: tuple[str, ...], **options) -> subprocess.CompletedProcess:
        command = ["docker-compose", "-p", self.project, "-f", str(COMPOSE_FILE), *args]
        return subprocess.run(
            command, env=self.env, capture_output=True, timeout=300, check=False, **options
        )

    def compose(self, *args: str, check: bool = True) -> str:
        result = self._run(args, text=True)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
                f"\n--- logs ---\n{self.logs()}"
            )
        return result.stdout + result.stderr

    def pipe(self, *args: str, data: bytes = b"") -> bytes:
        """A compose command with binary standard input and output (dumps, restores)."""
        result = self._run(args, input=data)
        assert result.returncode == 0, f"{' '.join(args)}: {result.stderr.decode()[-4000:]}"
        return result.stdout

    def logs(self) -> str:
        return self._run(("logs", "--no-color"), text=True).stdout[-8000:]

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).split()

    def published(self, service: str, port: int, index: int = 1) -> str:
        address = self.compose("port", f"--index={index}", service, str(port)).strip()
        return address.replace("0.0.0.0", "127.0.0.1")

    def exec(self, service: str, *command: str) -> str:
        return self.compose("exec", "-T", service, *command)

    def wait_healthy(self, client: docker.DockerClient) -> None:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            ids = [cid for service in self.services for cid in self.containers(service)]
            states = {}
            for cid in ids:
                container = client.containers.get(cid)
                # A service that crashed once will not get healthy by waiting: fail now.
                if container.attrs["RestartCount"] or container.status == "exited":
                    raise AssertionError(f"{container.name} crashed:\n{self.logs()}")
                states[container.name] = container.attrs["State"].get("Health", {}).get("Status")
            if len(ids) == len(self.services) + GRADERS - 1 and all(
                s == "healthy" for s in states.values()
            ):
                return
            time.sleep(2)
        raise AssertionError(f"stack not healthy in {HEALTH_TIMEOUT_S} s: {states}\n{self.logs()}")


def _ensure_images(client: docker.DockerClient) -> list[str]:
    """Builds the stack's images when one is missing; returns the names it built."""
    missing = [name for name in (*BASE_IMAGES, SERVER_IMAGE) if not _has_image(client, name)]
    if not missing:
        return []
    require_or_skip(
        os.geteuid() == 0 and shutil.which("debootstrap") is not None,
        "root and debootstrap, to build the stack images (scripts/build_stack_images.sh)",
        "MLEB_REQUIRE_DOCKER",
    )
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "build_stack_images.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, f"build_stack_images.sh failed:\n{result.stderr[-4000:]}"
    return missing


@pytest.fixture(scope="module")
def docker_client() -> docker.DockerClient:
    client = connect_docker()
    require_or_skip(client is not None, "a Docker engine", "MLEB_REQUIRE_DOCKER")
    require_or_skip(
        shutil.which("docker-compose") is not None,
        "docker-compose (apt-get install docker-compose)",
        "MLEB_REQUIRE_DOCKER",
    )
    return client


@pytest.fixture(scope="module")
def stack(
    docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComposeStack]:
    built = _ensure_images(docker_client)
    services = ["postgres", "registry", "grader", "sandbox"]
    # The sandbox's work dir is bind-mounted at the same path, so it must be a host path.
    sandbox_dir = tmp_path_factory.mktemp("compose-sandbox")
    project = f"mlebtest{secrets.token_hex(4)}"
    env = {
        **os.environ,
        "MLEB_AUTH_SECRET": TEST_AUTH_SECRET,
        "MLEB_POSTGRES_PASSWORD": secrets.token_hex(12),
        "MLEB_IMAGE": SERVER_IMAGE,
        "MLEB_POSTGRES_IMAGE": POSTGRES_IMAGE,
        "MLEB_REGISTRY_PORT": str(_free_port()),
        "MLEB_SANDBOX_PORT": str(_free_port()),
        "MLEB_SANDBOX_DIR": str(sandbox_dir),
        # Labels this run's agent containers, so teardown finds any left behind.
        "MLEB_SANDBOX_INSTANCE_ID": project,
    }
    stack = ComposeStack(project, env, services)
    try:
        stack.compose("up", "-d", "--scale", f"grader={GRADERS}", *services)
        stack.wait_healthy(docker_client)
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans", "--timeout", "10", check=False)
        for leftover in docker_client.containers.list(
            all=True, filters={"label": f"{INSTANCE_LABEL}={project}"}
        ):
            leftover.remove(force=True)
        for image in built:
            with contextlib.suppress(docker.errors.APIError):
                docker_client.images.remove(image)


@pytest.fixture(scope="module")
def lab_token() -> str:
    return TokenAuthority.from_spec(TEST_AUTH_SECRET).issue(Role.LAB, "compose-test")


@pytest.fixture(scope="module")
def competition(stack: ComposeStack, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A competition in mleb's own format, imported inside the registry container."""
    folder = build_own_competition(
        tmp_path_factory.mktemp("compose-competition"),
        COMPETITION,
        metric="accuracy",
        splits=None,
        complexity=None,
    )
    (folder / "private" / "answers.csv").write_text(ANSWERS)
    (folder / "public" / "sample_submission.csv").write_text(ANSWERS.replace(",b", ",a"))
    (folder / "leaderboard.csv").write_text(LEADERBOARD)
    registry = stack.containers("registry")[0]
    subprocess.run(["docker", "cp", str(folder), f"{registry}:/tmp/{COMPETITION}"], check=True)
    output = stack.exec("registry", "mleb", "registry", "import", f"/tmp/{COMPETITION}")
    assert "1 prepared" in output, output
    return COMPETITION


@pytest.mark.parametrize(
    ("service", "port", "index"),
    [
        ("registry", 50051, 1),
        *(("grader", 50052, i) for i in range(1, GRADERS + 1)),
        ("sandbox", 50053, 1),
    ],
)
def test_every_service_answers_health_and_reflection(
    stack: ComposeStack, service: str, port: int, index: int
) -> None:
    result = probe(stack.published(service, port, index))
    assert result["status"] == "SERVING", result
    assert f"mleb.{service}.v1.{service.title()}Service" in result["services"], result
    assert "grpc.health.v1.Health" in result["services"], result


def test_private_answers_live_in_the_registry_volume_only(
    stack: ComposeStack, docker_client: docker.DockerClient, competition: str
) -> None:
    answers = f"/var/lib/mleb/competitions/{competition}/private"
    assert "answers.csv" in stack.exec("registry", "ls", answers)
    graders = stack.containers("grader")
    assert len(graders) == GRADERS
    for index, cid in enumerate(graders, 1):
        mounts = docker_client.containers.get(cid).attrs["Mounts"]
        # Read-only root; an anonymous scratch volume, and the signing keys read-only.
        assert sorted((m["Type"], m["Destination"], m["RW"]) for m in mounts) == [
            ("volume", "/keys", False),
            ("volume", "/tmp", True),
        ]
        found = stack.compose(
            "exec", "-T", "-u", "root", f"--index={index}", "grader",
            "find", "/", "-xdev", "-name", "answers.csv",
        )  # fmt: skip
        assert "answers.csv" not in found


def test_every_grader_replica_grades_through_the_registry(
    stack: ComposeStack, competition: str, lab_token: str
) -> None:
    perfect = ANSWERS.encode()
    for index in range(1, GRADERS + 1):
        address = stack.published("grader", 50052, index)
        with Client(grader=address, token=lab_token) as client:
            report = client.grade_submission(competition, perfect).report
        assert report.valid_submission, report
        assert report.score == pytest.approx(1.0)
        assert report.gold_medal, report


def test_service_name_spreads_calls_over_the_replicas(
    stack: ComposeStack, docker_client: docker.DockerClient, competition: str, lab_token: str
) -> None:
    """Inside the network `grader:50052` resolves to every replica, and the client's
    round-robin policy sends successive calls to each of them."""
    script = (
        "import json, sys\n"
        "from mleb.client import Client\n"
        "with Client(grader='grader:50052', token=sys.argv[1]) as client:\n"
        f"    scores = [client.grade_submission({competition!r}, sys.argv[2].encode())"
        ".report.score for _ in range(12)]\n"
        "print(json.dumps(scores))\n"
    )
    half_right = ANSWERS.replace(",b", ",a")
    output = stack.exec("registry", "python", "-c", script, lab_token, half_right)
    assert json.loads(output.strip().splitlines()[-1]) == [0.5] * 12
    served = [
        docker_client.containers.get(cid).logs().decode().count("GraderService/GradeSubmission")
        for cid in stack.containers("grader")
    ]
    # 12 calls over 3 replicas: 4 each with round robin; pick_first would leave two idle.
    assert all(count >= 3 for count in served), served


def test_sandbox_runs_an_agent_that_the_grader_then_grades(
    stack: ComposeStack, docker_client: docker.DockerClient, competition: str, lab_token: str
) -> None:
    missing = [name for name in SANDBOX_IMAGES if not _has_image(docker_client, name)]
    require_or_skip(
        not missing, f"images {missing} (scripts/build_test_images.sh)", "MLEB_REQUIRE_DOCKER"
    )
    address = stack.published("sandbox", 50053)
    request = sandbox_pb.CreateSandboxRequest(
        competition_id=competition,
        image="mleb-test-python",
        command=[
            "bash", "-c",
            "cp /home/data/sample_submission.csv /home/submission/submission.csv"
            " && bash /home/validate_submission.sh /home/submission/submission.csv",
        ],
    )  # fmt: skip
    with Client(sandbox=address, token=lab_token, timeout=120) as client:
        sandbox = client.create_sandbox(request).sandbox
        deadline = time.monotonic() + 180
        while sandbox.state in ACTIVE:
            assert time.monotonic() < deadline, sandbox
            time.sleep(1)
            sandbox = client.get_sandbox(sandbox.id).sandbox
        logs = "\n".join(
            entry.text for batch in client.stream_logs(sandbox.id) for entry in batch.entries
        )
        archive = b"".join(chunk.data for chunk in client.download_artifacts(sandbox.id))
    assert sandbox.state == sandbox_pb2.SANDBOX_STATE_SUCCEEDED, (sandbox, logs, stack.logs())
    # The agent validated through its sidecar, the sandbox service and grader:50052.
    assert VALID_MESSAGE in logs, logs
    assert sandbox.submission_collected, sandbox
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.extractfile("submission/submission.csv")
        assert member is not None
        submission = member.read()
    grader = stack.published("grader", 50052)
    with Client(grader=grader, token=lab_token) as client:
        report = client.grade_submission(competition, submission).report
    assert report.valid_submission and report.score == pytest.approx(0.5), report


def test_backup_and_restore_after_the_database_is_lost(
    stack: ComposeStack,
    docker_client: docker.DockerClient,
    competition: str,
    lab_token: str,
    tmp_path: Path,
) -> None:
    """The procedure of docs/deploy.md: pg_dump to the host and the registry's files to an
    archive; lose the database; pg_restore, and the competition is served again."""
    dump = stack.pipe("exec", "-T", "postgres", "pg_dump", "-U", "mleb", "-Fc", "mleb")
    docker_client.containers.run(
        SERVER_IMAGE,
        ["tar", "-C", "/data", "-czf", "/backup/registry-data.tar.gz", "."],
        entrypoint=[],
        user="0",
        volumes={
            f"{stack.project}_registry-data": {"bind": "/data", "mode": "ro"},
            str(tmp_path): {"bind": "/backup", "mode": "rw"},
        },
        remove=True,
    )
    with tarfile.open(tmp_path / "registry-data.tar.gz") as tar:
        assert f"./competitions/{competition}/private/answers.csv" in tar.getnames()
    stack.compose("stop", "registry", "sandbox")
    stack.exec("postgres", "dropdb", "-U", "mleb", "mleb")
    stack.exec("postgres", "createdb", "-U", "mleb", "mleb")
    stack.pipe("exec", "-T", "postgres", "pg_restore", "-U", "mleb", "-d", "mleb", data=dump)
    stack.compose("start", "registry", "sandbox")
    stack.wait_healthy(docker_client)
    registry = stack.published("registry", 50051)
    with Client(registry=registry, token=lab_token) as client:
        restored = client.get_competition(competition).competition
    assert restored.data_status == registry_pb2.DATA_STATUS_PREPARED
    assert restored.leaderboard_size == 3


def test_mleb_run_grades_the_demo_agent_on_a_builtin_competition(
    stack: ComposeStack, docker_client: docker.DockerClient, lab_token: str, tmp_path: Path
) -> None:
    """The issue's end-to-end check: the demo agent through `mleb run` against the stack,
    then the graded report of the run group."""
    image = docker_agent_image(lambda message: None)
    require_or_skip(image is not None, "the demo agent image", "MLEB_REQUIRE_DOCKER")
    output = stack.exec(
        "registry", "mleb", "registry", "import-builtin", "--competitions", DEMO_COMPETITION
    )
    assert "1 prepared" in output, output
    competitions = tmp_path / "competitions.txt"
    competitions.write_text(f"{DEMO_COMPETITION}\n")
    env = {
        **os.environ,
        "MLEB_REGISTRY_ADDR": stack.published("registry", 50051),
        "MLEB_GRADER_ADDR": stack.published("grader", 50052),
        "MLEB_SANDBOX_ADDR": stack.published("sandbox", 50053),
        "MLEB_TOKEN": lab_token,
        "COLUMNS": "200",
    }
    runs = tmp_path / "runs"
    result = subprocess.run(
        [sys.executable, "-m", "services.cli.main", "run", "--agent", image,
         "--competitions", str(competitions), "--seeds", "1", "--time-limit", "10m",
         "--runs-dir", str(runs), "--run-group", "compose-demo"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr + stack.logs()
    report_file = next((runs / "compose-demo").glob("*_grading_report.json"))
    report = json.loads(report_file.read_text())
    assert report["total_runs"] == 1 and report["total_valid_submissions"] == 1, report
    entry = report["competition_reports"][0]
    assert entry["competition_id"] == DEMO_COMPETITION
    # The baseline agent earns a medal on this competition's synthetic-baseline board.
    assert entry["any_medal"], entry
    # The run's evidence verifies against the keys the stack publishes: the grader replicas
    # share one key, so whichever replica graded, its statement checks out.
    cli = [sys.executable, "-m", "services.cli.main"]
    keys = subprocess.run([*cli, "keys"], env=env, capture_output=True, text=True, check=False)
    assert keys.returncode == 0 and keys.stdout.count("keyid: ") == 2, keys.stdout + keys.stderr
    (tmp_path / "keys.pem").write_text(keys.stdout)
    verified = subprocess.run(
        [*cli, "verify", str(runs / "compose-demo"), "--keys", str(tmp_path / "keys.pem")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
