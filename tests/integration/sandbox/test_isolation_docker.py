"""Isolation on the real Docker engine: the DockerBackend plus the host endpoints, driven
directly (the service path is tested with the core). A real grader holds answers with a
planted marker; agents in real containers try to find it and try the network."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import errno
import hashlib
import http.server
import ipaddress
import json
import os
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from services.common.auth import Role, TokenAuthority
from services.common.settings import Settings
from services.registry.app import registry_service
from services.sandbox.backends.base import (
    BackendError,
    ExitInfo,
    Handle,
    LaunchSpec,
    NetworkMode,
    OutputLine,
    OutputStream,
)
from services.sandbox.backends.docker.backend import DockerBackend
from services.sandbox.node.egress_proxy import AddressPolicy, parse_address_allowances
from services.sandbox.node.endpoints import VALIDATE_SOCKET, SandboxEndpoints
from tests.fixtures.sandbox_docker import (
    COMPETITION,
    MARKER,
    TEST_INSTANCE,
    grader_definition,
    make_layout,
    make_spec,
    sample_submission,
    write_answers,
)
from tests.integration.sandbox.agent_scripts import LAYOUT_AGENT, NETWORK_AGENT, SEARCH_AGENT

pytestmark = pytest.mark.docker

PYTHON_IMAGE = "mleb-test-python"
BUSYBOX_IMAGE = "mleb-test-busybox"


@dataclasses.dataclass
class Run:
    spec: LaunchSpec
    handle: Handle
    exit: ExitInfo
    stdout: list[str]
    stderr: list[str]

    def result(self) -> dict:
        lines = [line for line in self.stdout if line.startswith("RESULT=")]
        assert lines, f"no result; stdout={self.stdout[-20:]} stderr={self.stderr[-20:]}"
        return json.loads(lines[-1].removeprefix("RESULT="))


class Rig:
    """A grader, the endpoints and the backend, with every sandbox removed afterwards."""

    def __init__(self, engine, root: Path, grader_addr: str, settings, authority) -> None:
        self.backend = DockerBackend(engine)
        self.endpoints = SandboxEndpoints(grader_addr, settings)
        self._grader_addr = grader_addr
        self._settings = settings
        self.engine = engine
        self._root = root
        self._authority: TokenAuthority = authority
        self._handles: list[Handle] = []

    def allow_addresses(self, addresses: list[str], egress_log=None) -> None:
        """Endpoints whose egress proxy may reach these addresses, as with
        MLEB_SANDBOX_EGRESS_ALLOW_ADDRESSES, and report to `egress_log`."""
        policy = AddressPolicy(parse_address_allowances(addresses, "test"))
        self.endpoints = SandboxEndpoints(self._grader_addr, self._settings, policy, egress_log)

    async def prepare(self, image: str, command: list[str], **overrides) -> LaunchSpec:
        sandbox_id = f"t{uuid.uuid4().hex[:12]}"
        layout = make_layout(self._root / sandbox_id)
        token = self._authority.issue(
            Role.SANDBOX, "agent", sandbox_id=sandbox_id, competition_id=COMPETITION
        )
        spec = make_spec(layout, image, command, sandbox_id=sandbox_id, **overrides)
        spec = dataclasses.replace(
            spec, env={**spec.env, "MLEB_SANDBOX_TOKEN": token, "COMPETITION": COMPETITION}
        )
        await self.endpoints.open(
            sandbox_id, layout.sockets_dir, token, spec.network, spec.allowed_hosts
        )
        return spec

    async def launch(self, spec: LaunchSpec) -> Handle:
        handle = await self.backend.launch(spec)
        self._handles.append(handle)
        return handle

    async def run(self, image: str, command: list[str], timeout: float = 90, **kw) -> Run:
        spec = await self.prepare(image, command, **kw)
        return await self.follow(spec, await self.launch(spec), timeout)

    async def follow(self, spec: LaunchSpec, handle: Handle, timeout: float = 90) -> Run:
        stdout: list[str] = []
        stderr: list[str] = []
        async with asyncio.timeout(timeout):
            async for line in self.backend.output(handle):
                (stdout if line.stream is OutputStream.STDOUT else stderr).append(line.text)
            exit_info = await self.backend.wait(handle)
        return Run(spec, handle, exit_info, stdout, stderr)

    async def close(self) -> None:
        for handle in self._handles:
            await self.backend.remove(handle)
        await self.endpoints.aclose()


@pytest.fixture
async def rig(
    engine, tmp_path, serve, channel_to, settings: Settings, authority
) -> AsyncIterator[Rig]:
    registry = await serve(
        [registry_service(replace(settings, database_url=f"sqlite:///{tmp_path / 'r.db'}"))],
        settings,
    )
    service = authority.issue(Role.SERVICE, "test-grader")
    grader = await serve(
        [grader_definition(write_answers(tmp_path), channel_to(registry), service)], settings
    )
    rig = Rig(engine, tmp_path / "sandboxes", f"127.0.0.1:{grader.port}", settings, authority)
    yield rig
    await rig.close()


class _Reply(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.body  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def host_server():
    """HTTP servers on the host that answer GET with a fixed body: `start(body, bind)`."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(body: str, bind: str = "127.0.0.1") -> int:
        server = http.server.ThreadingHTTPServer((bind, 0), _Reply)
        server.body = body.encode()  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _time(line: OutputLine) -> float:
    return line.time


def _bridge_gateway(engine) -> str:
    """The host's address on Docker's default bridge (docker0)."""
    config = engine.networks.get("bridge").attrs["IPAM"]["Config"][0]
    return config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


async def test_filesystem_is_the_mlebench_layout_and_validation_works(rig):
    run = await rig.run(PYTHON_IMAGE, ["python3", "-c", LAYOUT_AGENT])
    assert run.exit == ExitInfo(0, False), run.stderr
    result = run.result()
    assert result["uid"] == 1000 and result["gid"] == 1000
    assert result["data"] == ["description.md", "sample_submission.csv", "test.csv", "train.csv"]
    assert result["description"].startswith("# Spaceship Titanic")
    assert "validate_submission.sh" in result["instructions"]
    assert result["writable"] == {
        "/home/data": False,
        "/home/submission": True,
        "/home/logs": True,
        "/home/code": True,
    }
    assert json.loads(result["validate"]) == {"result": "Submission is valid."}
    layout = run.spec.layout
    assert (layout.submission_dir / "submission.csv").read_text().startswith("PassengerId")
    assert (layout.code_dir / "agent.py").exists() and (layout.logs_dir / "agent.log").exists()


async def test_mleb_validate_is_on_path_where_the_instructions_say(rig):
    script = (
        "command -v mleb-validate; "
        'mleb-validate --competition "$COMPETITION" /home/data/sample_submission.csv'
    )
    run = await rig.run(PYTHON_IMAGE, ["sh", "-c", script])
    assert run.exit.exit_code == 0, run.stdout + run.stderr
    assert run.stdout[0] == "/usr/local/bin/mleb-validate"
    assert any("valid" in line.lower() for line in run.stdout[1:]), run.stdout


async def test_private_answers_are_nowhere_inside_and_validation_still_works(rig):
    encoded = base64.b64encode(MARKER.encode()).decode()
    run = await rig.run(PYTHON_IMAGE, ["python3", "-c", SEARCH_AGENT, encoded], timeout=240)
    assert run.exit.exit_code == 0, run.stderr[-20:]
    result = run.result()
    assert result["found"] == []
    assert result["interfaces"] == ["lo"]
    # Only the two validation endpoints listen; nothing else routes anywhere.
    assert result["open_ports"] == [5000, 50052]
    assert all(code != 0 for code in result["remote"].values()), result["remote"]
    assert result["valid"] == {"result": "Submission is valid."}
    assert result["invalid"]["result"].startswith("Submission invalid!")
    assert result["grpc_valid"] is True
    assert result["denied"] == {"score": "PERMISSION_DENIED", "other": "PERMISSION_DENIED"}
    # And from the host: no mount or variable names the answers.
    attrs = rig.engine.api.inspect_container(run.handle.ref)
    assert not any(MARKER in m["Source"] for m in attrs["Mounts"])
    assert not any(MARKER in e for e in attrs["Config"]["Env"])


async def test_limits_and_security_options_are_applied(rig):
    spec = await rig.prepare(
        BUSYBOX_IMAGE,
        ["sleep", "30"],
        cpus=0.5,
        memory_bytes=96 * 1024**2,
        shm_bytes=32 * 1024**2,
        pids_limit=40,
    )
    handle = await rig.launch(spec)
    host = rig.engine.api.inspect_container(handle.ref)["HostConfig"]
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == host["MemorySwap"] == 96 * 1024**2
    assert host["ShmSize"] == 32 * 1024**2
    assert host["PidsLimit"] == 40
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert host["NetworkMode"].startswith("container:")
    # The image's user "agent", resolved through its /etc/passwd to numbers.
    assert rig.engine.images.get(BUSYBOX_IMAGE).attrs["Config"]["User"] == "agent"
    assert rig.engine.api.inspect_container(handle.ref)["Config"]["User"] == "1000:1000"
    await rig.backend.stop(handle, grace_s=1)


async def test_a_fork_bomb_is_bounded_by_the_pid_limit(rig):
    # The bomb runs in a subshell (a shell dies when it cannot fork); the outer shell then
    # counts processes with builtins only, since nothing more can fork.
    loop = "n=0; while [ $n -lt 200 ]; do sleep 60 & n=$((n+1)); done"
    run = await rig.run(
        BUSYBOX_IMAGE, ["sh", "-c", f"({loop}); set -- /proc/[0-9]*; echo $#"], pids_limit=32
    )
    assert 20 <= int(run.stdout[-1]) <= 32
    assert any("can't fork" in line for line in run.stderr)


async def test_running_out_of_memory_is_a_real_oom_kill(rig):
    hog = "b = bytearray(); [b.extend(b'x' * (1 << 20)) for _ in range(1024)]"
    run = await rig.run(PYTHON_IMAGE, ["python3", "-c", hog], memory_bytes=64 * 1024**2)
    assert run.exit.oom_killed is True
    assert run.exit.exit_code == 137


async def test_network_none_has_no_egress_but_validation(rig, host_server):
    port = host_server("host service", bind="0.0.0.0")
    targets = {
        "direct": {
            "docker0": f"http://{_bridge_gateway(rig.engine)}:{port}/",
            "outside": "http://1.1.1.1/",
        }
    }
    run = await rig.run(PYTHON_IMAGE, ["python3", "-c", NETWORK_AGENT, json.dumps(targets)])
    result = run.result()
    assert result["interfaces"] == ["lo"]
    assert result["docker0"].startswith("ERROR") and result["outside"].startswith("ERROR")
    assert json.loads(result["validate"]) == {"result": "Submission is valid."}


async def test_allowlist_reaches_listed_hosts_only_through_the_proxy(rig, host_server):
    # Stand-ins for outside hosts: the proxy (on the host) reaches them, the agent has no route.
    gateway = _bridge_gateway(rig.engine)
    allowed = host_server("allowed service", bind="0.0.0.0")
    refused = host_server("refused service", bind="0.0.0.0")
    # The gateway is the host's own (private) address: reachable only when the operator says so.
    rig.allow_addresses([gateway])
    targets = {
        "proxied": {
            "allowed": f"http://{gateway}:{allowed}/x",
            "refused": f"http://{gateway}:{refused}/x",
        },
        "connect": {"tunnel": [gateway, allowed], "tunnel_refused": [gateway, refused]},
        "direct": {"bypass": f"http://{gateway}:{allowed}/x"},
    }
    run = await rig.run(
        PYTHON_IMAGE,
        ["python3", "-c", NETWORK_AGENT, json.dumps(targets)],
        network=NetworkMode.ALLOWLIST,
        allowed_hosts=[f"{gateway}:{allowed}", "*.example.org"],
    )
    result = run.result()
    assert result["allowed"] == ["200", "allowed service"]
    assert result["refused"][0] == "403"
    assert result["tunnel"][0] == "HTTP/1.1 200 Connection established"
    assert result["tunnel"][1].endswith("\r\n\r\nallowed service")
    assert result["tunnel_refused"][0].startswith("HTTP/1.1 403")
    assert result["bypass"].startswith("ERROR")
    assert result["interfaces"] == ["lo"]
    assert json.loads(result["validate"]) == {"result": "Submission is valid."}


async def test_internet_mode_routes_out_and_keeps_validation(rig, host_server):
    port = host_server("reached over the bridge", bind="0.0.0.0")
    targets = {"direct": {"host": f"http://{_bridge_gateway(rig.engine)}:{port}/"}}
    run = await rig.run(
        PYTHON_IMAGE,
        ["python3", "-c", NETWORK_AGENT, json.dumps(targets)],
        network=NetworkMode.INTERNET,
    )
    result = run.result()
    assert result["host"] == "reached over the bridge"
    assert "eth0" in result["interfaces"]
    assert json.loads(result["validate"]) == {"result": "Submission is valid."}


async def test_mlebench_compat_runs_start_sh_as_nonroot_without_the_entrypoint(rig):
    run = await rig.run("mleb-test-mlebench-env", [], mlebench_compat=True)
    assert run.exit.exit_code == 0, run.stdout + run.stderr
    out = "\n".join(run.stdout)
    assert f"start.sh user=nonroot competition={COMPETITION}" in out
    assert "dirs=/home/submission,/home/logs,/home/code,/home/agent" in out
    assert "agent dir writable" in out and "data readable" in out
    assert '{"result": "Submission is valid."}' in run.stdout  # curl's reply has no newline
    assert "grading server entrypoint ran" not in out
    layout = run.spec.layout
    assert not (layout.logs_dir / "entrypoint.log").exists()
    assert (layout.logs_dir / "run.log").exists() and (layout.code_dir / "code.py").exists()
    assert (layout.submission_dir / "submission.csv").exists()


async def test_output_keeps_streams_apart_with_engine_times_and_resumes(rig):
    script = "echo one; echo two >&2; sleep 1; echo three; printf 'four, no newline' >&2"
    run = await rig.run(BUSYBOX_IMAGE, ["sh", "-c", script])
    assert run.stdout == ["one", "three"] and run.stderr == ["two", "four, no newline"]
    # Times are when the engine read each pipe, so the two streams interleave loosely.
    lines = sorted([line async for line in rig.backend.output(run.handle)], key=_time)
    three = next(line for line in lines if line.text == "three")
    assert three.time - lines[0].time >= 0.9
    resumed = [line async for line in rig.backend.output(run.handle, since=three.time)]
    assert sorted(resumed, key=_time) == [line for line in lines if line.time >= three.time]


async def test_stop_terminates_and_remove_cleans_up_agent_and_sidecar(rig):
    spec = await rig.prepare(BUSYBOX_IMAGE, ["sleep", "300"])
    handle = await rig.launch(spec)
    owned = await rig.backend.list_owned({"mleb.instance": TEST_INSTANCE})
    assert any(h.ref == handle.ref and running for h, running in owned)
    await rig.backend.stop(handle, grace_s=1)
    assert (await rig.backend.wait(handle)).exit_code in (137, 143)
    await rig.backend.stop(handle, grace_s=1)  # idempotent
    await rig.backend.remove(handle)
    await rig.backend.remove(handle)
    left = rig.engine.containers.list(
        all=True, filters={"label": f"mleb.sandbox.id={spec.sandbox_id}"}
    )
    assert left == []


async def test_list_owned_removes_a_sidecar_left_without_its_agent(rig):
    spec = await rig.prepare(BUSYBOX_IMAGE, ["sleep", "60"])
    handle = await rig.launch(spec)
    rig.engine.api.remove_container(handle.ref, force=True)
    owned = await rig.backend.list_owned({"mleb.instance": TEST_INSTANCE})
    assert all(h.sandbox_id != spec.sandbox_id for h, _ in owned)
    assert (
        rig.engine.containers.list(
            all=True, filters={"label": f"mleb.sandbox.id={spec.sandbox_id}"}
        )
        == []
    )


async def test_gpus_fail_without_a_runtime_and_leave_nothing(rig):
    """This engine has no NVIDIA runtime: the device request (tests/unit/sandbox, gpu
    settings) is refused, and nothing of the sandbox is left behind."""
    uuids = ["GPU-11111111-2222-3333-4444-555555555555"]
    other = await rig.prepare(BUSYBOX_IMAGE, ["true"], gpu_uuids=uuids)
    with pytest.raises(BackendError) as err:
        await rig.backend.launch(other)
    assert err.value.reason in {"GPU_UNAVAILABLE", "RUNTIME_ERROR"}
    left = rig.engine.containers.list(
        all=True, filters={"label": f"mleb.sandbox.id={other.sandbox_id}"}
    )
    assert left == []


async def test_a_missing_image_is_image_not_found_and_never_pulled(rig):
    spec = await rig.prepare("mleb-test-no-such-image:latest", ["true"])
    with pytest.raises(BackendError) as err:
        await rig.backend.launch(spec)
    assert err.value.reason == "IMAGE_NOT_FOUND"


async def _post_validate(sockets_dir: Path, form: aiohttp.FormData | None) -> tuple[int, dict]:
    with tempfile.TemporaryDirectory() as short:
        # A socket path must fit in 108 bytes; pytest's folders are deeper than that.
        link = Path(short) / "s"
        link.symlink_to(sockets_dir)
        connector = aiohttp.UnixConnector(path=str(link / VALIDATE_SOCKET))
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.post("http://localhost/validate", data=form) as reply,
        ):
            return reply.status, await reply.json()


def _form(csv: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", csv.encode(), filename="submission.csv", content_type="text/csv")
    return form


async def test_http_validate_replies_as_mlebench(rig, tmp_path, settings, authority):
    spec = await rig.prepare(BUSYBOX_IMAGE, ["true"])
    sockets = spec.layout.sockets_dir
    assert await _post_validate(sockets, _form(sample_submission())) == (
        200,
        {"result": "Submission is valid."},
    )
    status, body = await _post_validate(sockets, _form("PassengerId,Transported\nx,True\n"))
    assert status == 200 and body["result"].startswith("Submission invalid! ")
    assert MARKER not in body["result"]
    other = aiohttp.FormData()
    other.add_field("not_file", b"x", filename="a.csv")
    status, body = await _post_validate(sockets, other)
    assert status == 400 and set(body) == {"error", "details"}
    # A grader that cannot be reached: MLE-bench's 500 shape.
    down = SandboxEndpoints("127.0.0.1:9", settings)
    token = authority.issue(Role.SANDBOX, "agent", sandbox_id="down", competition_id=COMPETITION)
    (tmp_path / "down").mkdir()
    await down.open("down", tmp_path / "down", token, NetworkMode.NONE, [])
    try:
        status, body = await _post_validate(tmp_path / "down", _form(sample_submission()))
        assert status == 500
        assert body["error"] == "An unexpected error occurred."
        assert body["details"].startswith("UNAVAILABLE")
    finally:
        await down.aclose()
    assert not (tmp_path / "down" / VALIDATE_SOCKET).exists()


VALIDATE_AGENT = r"""
import json, subprocess
r = subprocess.run(["bash", "/home/validate_submission.sh", "/home/data/sample_submission.csv"],
                   capture_output=True, text=True)
interfaces = sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:])
print("RESULT=" + json.dumps({"validate": r.stdout, "interfaces": interfaces}), flush=True)
"""


def _sidecar_of(rig: Rig, run: Run) -> dict:
    (sidecar,) = rig.engine.api.containers(
        all=True,
        filters={"label": [f"mleb.sandbox.id={run.spec.sandbox_id}", "mleb.role=sidecar"]},
    )
    return rig.engine.api.inspect_container(sidecar["Id"])


async def test_concurrent_launches_each_join_their_own_hardened_sidecar(rig):
    """Sidecars start while their agents are created: each agent still joins its own
    sidecar, which keeps every hardening option, and validates through it."""
    runs = await asyncio.gather(
        *(rig.run(PYTHON_IMAGE, ["python3", "-c", VALIDATE_AGENT]) for _ in range(6))
    )
    sidecars = [_sidecar_of(rig, run) for run in runs]
    assert len({sidecar["Id"] for sidecar in sidecars}) == len(runs)
    for run, sidecar in zip(runs, sidecars, strict=True):
        assert run.exit == ExitInfo(0, False), run.stderr
        result = run.result()
        assert json.loads(result["validate"]) == {"result": "Submission is valid."}
        assert result["interfaces"] == ["lo"]
        agent = rig.engine.api.inspect_container(run.handle.ref)
        assert agent["HostConfig"]["NetworkMode"] == f"container:{sidecar['Id']}"
        host = sidecar["HostConfig"]
        assert host["NetworkMode"] == "none"
        assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
        assert host["Memory"] == host["MemorySwap"] == 64 * 1024**2
        assert host["PidsLimit"] == 64 and host["NanoCpus"] == 500_000_000
        assert sidecar["Config"]["User"] == "65534:65534"
        assert sidecar["Config"]["Env"] is None or not any(
            name.lower().startswith(("http_proxy", "https_proxy"))
            for name in sidecar["Config"]["Env"]
        )
        (mount,) = sidecar["Mounts"]
        assert mount["Source"] == str(run.spec.layout.sockets_dir) and not mount["RW"]


async def test_an_agent_cannot_reach_another_sandboxs_sidecar(rig):
    """In internet mode sidecars sit on the bridge, each with an address; their forwarders
    listen on loopback only, so another sandbox's agent reaches none of their ports."""
    other = await rig.launch(
        await rig.prepare(BUSYBOX_IMAGE, ["sleep", "120"], network=NetworkMode.INTERNET)
    )
    (sidecar,) = rig.engine.api.containers(
        filters={"label": [f"mleb.sandbox.id={other.sandbox_id}", "mleb.role=sidecar"]}
    )
    address = sidecar["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    assert address
    ports = {"other_validate": 5000, "other_grader": 50052, "other_proxy": 3128}
    targets = {"direct": {name: f"http://{address}:{port}/" for name, port in ports.items()}}
    run = await rig.run(
        PYTHON_IMAGE,
        ["python3", "-c", NETWORK_AGENT, json.dumps(targets)],
        network=NetworkMode.INTERNET,
    )
    result = run.result()
    for name in ports:
        assert result[name].startswith("ERROR"), (name, result[name])
    assert json.loads(result["validate"]) == {"result": "Submission is valid."}


async def test_a_sidecar_that_cannot_start_fails_the_launch_and_leaves_nothing(rig):
    # busybox cannot run the forwarder: the sidecar never announces itself.
    rig.backend = DockerBackend(rig.engine, sidecar_image=BUSYBOX_IMAGE)
    spec = await rig.prepare(BUSYBOX_IMAGE, ["sleep", "30"])
    with pytest.raises(BackendError):
        await rig.backend.launch(spec)
    left = rig.engine.containers.list(
        all=True, filters={"label": f"mleb.sandbox.id={spec.sandbox_id}"}
    )
    assert left == []


async def test_a_missing_sidecar_image_is_image_not_found(rig):
    rig.backend = DockerBackend(rig.engine, sidecar_image="mleb-test-no-such-sidecar:latest")
    spec = await rig.prepare(BUSYBOX_IMAGE, ["sleep", "30"])
    with pytest.raises(BackendError) as err:
        await rig.backend.launch(spec)
    assert err.value.reason == "IMAGE_NOT_FOUND" and "no-such-sidecar" in str(err.value)
    left = rig.engine.containers.list(
        all=True, filters={"label": f"mleb.sandbox.id={spec.sandbox_id}"}
    )
    assert left == []


# Everything a hostile agent might try on the shared public data; each must fail.
PUBLIC_DATA_AGENT = r"""
import json, os
out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = "allowed"
    except OSError as exc:
        out[name] = exc.errno
attempt("create", lambda: open("/home/data/new.txt", "w"))
attempt("append", lambda: open("/home/data/train.csv", "a"))
attempt("truncate", lambda: os.truncate("/home/data/train.csv", 0))
attempt("rename", lambda: os.rename("/home/data/train.csv", "/home/data/moved.csv"))
attempt("rename_out", lambda: os.rename("/home/data/train.csv", "/home/submission/t.csv"))
attempt("unlink", lambda: os.unlink("/home/data/images/a.txt"))
attempt("rmdir", lambda: os.rmdir("/home/data/images"))
attempt("mkdir", lambda: os.mkdir("/home/data/new"))
attempt("chmod", lambda: os.chmod("/home/data/train.csv", 0o666))
attempt("chmod_folder", lambda: os.chmod("/home/data", 0o777))
attempt("utime", lambda: os.utime("/home/data/train.csv"))
attempt("hardlink", lambda: os.link("/home/data/train.csv", "/home/data/l.csv"))
attempt("hardlink_out", lambda: os.link("/home/data/train.csv", "/home/submission/l.csv"))
attempt("symlink", lambda: os.symlink("/etc/passwd", "/home/data/s"))
attempt("description_write", lambda: open("/home/data/description.md", "w"))
attempt("description_unlink", lambda: os.unlink("/home/data/description.md"))
attempt("description_rename", lambda: os.rename("/home/data/description.md", "/home/data/d.md"))
attempt("planted_read", lambda: open("/home/data/planted").read())
out["data"] = sorted(os.listdir("/home/data"))
out["description"] = open("/home/data/description.md").read()
out["train"] = open("/home/data/train.csv").read()
print("RESULT=" + json.dumps(out), flush=True)
"""


def sealed_entry(root: Path, answers: Path) -> Path:
    """A cache entry as the service seals it, plus a link planted on the host towards the
    private answers (the registry can never send one: fetched files are regular files)."""
    entry = root / "public-data" / COMPETITION / "key"
    (entry / "images").mkdir(parents=True)
    (entry / "train.csv").write_text("PassengerId,Transported\n0001_01,True\n")
    (entry / "sample_submission.csv").write_text(sample_submission())
    (entry / "images" / "a.txt").write_text("a\n")
    (entry / "description.md").touch()
    os.symlink(answers, entry / "planted")
    for path in entry.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o444)
    entry.chmod(0o755)
    return entry


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink()
    } | {str(p.relative_to(folder)): oct(p.lstat().st_mode) for p in folder.rglob("*")}


async def test_shared_public_data_is_read_only_and_each_sandbox_sees_its_description(rig, tmp_path):
    entry = sealed_entry(tmp_path / "cache", tmp_path / f"private-{MARKER}" / "test.csv")
    before = tree_digest(entry)
    runs = []
    for description in ("# First sandbox\n", "# Second sandbox, plain variant\n"):
        spec = await rig.prepare(PYTHON_IMAGE, ["python3", "-c", PUBLIC_DATA_AGENT])
        layout = replace(spec.layout, public_dir=entry)
        layout.description_file.write_text(description)
        spec = replace(spec, layout=layout)
        runs.append((description, spec, await rig.launch(spec)))
    for description, spec, handle in runs:
        run = await rig.follow(spec, handle)
        assert run.exit == ExitInfo(0, False), run.stderr
        result = run.result()
        allowed = [name for name, outcome in result.items() if outcome == "allowed"]
        assert allowed == []
        assert result["planted_read"] == errno.ENOENT
        assert MARKER not in "\n".join(run.stdout + run.stderr)
        assert result["data"] == [
            "description.md",
            "images",
            "planted",
            "sample_submission.csv",
            "train.csv",
        ]
        assert result["description"] == description
        assert result["train"].startswith("PassengerId")
    # Neither sandbox changed the shared entry, nor each other's view.
    assert tree_digest(entry) == before
    assert (entry / "description.md").read_bytes() == b""


async def test_mlebench_compat_runs_on_the_shared_public_data(rig, tmp_path):
    entry = sealed_entry(tmp_path / "cache", tmp_path / f"private-{MARKER}" / "test.csv")
    spec = await rig.prepare("mleb-test-mlebench-env", [], mlebench_compat=True)
    layout = replace(spec.layout, public_dir=entry)
    layout.description_file.write_text("# Spaceship Titanic\n")
    spec = replace(spec, layout=layout)
    run = await rig.follow(spec, await rig.launch(spec))
    assert run.exit.exit_code == 0, run.stdout + run.stderr
    out = "\n".join(run.stdout)
    assert "data readable" in out and "agent dir writable" in out
    assert '{"result": "Submission is valid."}' in run.stdout
    assert (layout.submission_dir / "submission.csv").exists()
