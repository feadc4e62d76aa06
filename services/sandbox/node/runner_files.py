"""The folder a sandbox service shares with the node runner of one sandbox
(services.sandbox.node.runner), on a filesystem both the service and the node see.

The service writes the spec; the runner, on whichever node the scheduler picked, writes
what happened, each file whole (written aside, then renamed) so a reader never sees half:
- spec.json (0600): the launch spec, secrets included; the runner deletes it once read
- stop.json: a stop's grace period, written by the service before it signals the runner
- started.json: the agent's container, image digest, node and GPUs, once it runs
- output.jsonl: the agent's output, one {"s": stream, "t": engine time, "x": text} per line
- usage.json: the latest usage sample
- egress.json: the allowlist proxy's egress log, summed per destination
- exit.json: how the agent ended (or why it never ran); written last
- job.json: the service's own record of the job (its instance's comment, then the job id),
  so a restart finds a job the scheduler has already forgotten, or never got
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from services.sandbox.backends.base import LaunchSpec, NetworkMode, OutputLine, OutputStream
from services.sandbox.node.layout import host_layout

# Every file but the output is small; a bigger one is not ours.
MAX_FILE_BYTES = 4 * 1024 * 1024
# One output line as the runner writes it (the engine splits longer lines).
MAX_LINE_BYTES = 256 * 1024


@dataclass(frozen=True)
class RunnerOptions:
    """What the runner needs beyond the launch spec."""

    sidecar_image: str = ""
    # Where the node's GPU device files are, when no NVIDIA runtime hands them to containers
    # (the development cluster's stand-ins); empty: the NVIDIA runtime, by GPU UUID.
    gpu_device_dir: str = ""
    # Agent output the runner keeps for the service; the rest is dropped with a notice.
    max_output_bytes: int = 1 << 30
    sample_interval_s: float = 2.0
    # For the endpoints the runner serves (runner_endpoints): the grader as the node reaches
    # it, the CA that verifies it (a path on the node), and the service's egress settings.
    grader_addr: str = ""
    client_tls_ca: str = ""
    egress_allow_addresses: tuple[str, ...] = ()
    egress_max_destinations: int = 256


@dataclass(frozen=True)
class Started:
    ref: str
    image_digest: str
    placement: str
    gpus: tuple[str, ...]
    # When the agent started (unix seconds, the node's clock): its time limit counts from
    # here, also for a service that learns of it only after a restart.
    at: float = 0.0


@dataclass(frozen=True)
class Ended:
    exit_code: int = -1
    oom_killed: bool = False
    # Set when the agent did not run to an exit of its own: why, and a BackendError reason.
    error: str = ""
    reason: str = ""
    # The runner stopped the agent on a signal that came without the service's stop.json.
    stopped_by_scheduler: bool = False


@dataclass(frozen=True)
class JobRecord:
    # The comment of the service instance that submitted it (mleb:<node>/<instance>).
    comment: str
    # Empty until the scheduler answered with one.
    job_id: str = ""


@dataclass(frozen=True)
class Sample:
    cpu_seconds: float = 0.0
    peak_memory_bytes: int = 0
    writable_layer_bytes: int | None = None


def spec_to_json(spec: LaunchSpec, options: RunnerOptions) -> dict[str, Any]:
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    layout = spec.layout
    fields["layout"] = {
        "root": str(layout.root),
        "public_dir": str(layout.public_dir) if layout.public_dir else None,
    }
    fields["network"] = spec.network.value
    return {"spec": fields, "options": dataclasses.asdict(options)}


def spec_from_json(raw: dict[str, Any]) -> tuple[LaunchSpec, RunnerOptions]:
    fields = dict(raw["spec"])
    layout = fields["layout"]
    public_dir = layout["public_dir"]
    fields["layout"] = host_layout(Path(layout["root"]), Path(public_dir) if public_dir else None)
    fields["network"] = NetworkMode(fields["network"])
    options = dict(raw["options"])
    options["egress_allow_addresses"] = tuple(options["egress_allow_addresses"])
    return LaunchSpec(**fields), RunnerOptions(**options)


class RunnerFiles:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.spec = folder / "spec.json"
        self.stop = folder / "stop.json"
        self.started = folder / "started.json"
        self.output = folder / "output.jsonl"
        self.usage = folder / "usage.json"
        self.egress = folder / "egress.json"
        self.exit = folder / "exit.json"
        self.job = folder / "job.json"

    # Writing

    def write(self, path: Path, value: dict[str, Any]) -> None:
        """Whole or not at all: written aside, then renamed over the name."""
        aside = path.with_name(f".{path.name}.part")
        with contextlib.suppress(FileNotFoundError):
            aside.unlink()
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(value, out)
        os.replace(aside, path)

    def write_spec(self, spec: LaunchSpec, options: RunnerOptions) -> None:
        self.write(self.spec, spec_to_json(spec, options))

    def write_started(self, started: Started) -> None:
        self.write(self.started, dataclasses.asdict(started))

    def write_sample(self, sample: Sample) -> None:
        self.write(self.usage, dataclasses.asdict(sample))

    def write_exit(self, ended: Ended) -> None:
        self.write(self.exit, dataclasses.asdict(ended))

    def write_job(self, job: JobRecord) -> None:
        self.write(self.job, dataclasses.asdict(job))

    # Reading (None: not there yet)

    def read(self, path: Path) -> dict[str, Any] | None:
        try:
            # Never a link, and never blocked on a FIFO: only a plain file is read.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as source:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ValueError(f"{path.name} is not a plain file")
            body = source.read(MAX_FILE_BYTES + 1)
        if len(body) > MAX_FILE_BYTES:
            raise ValueError(f"{path.name} is larger than {MAX_FILE_BYTES} bytes")
        value = json.loads(body)
        if not isinstance(value, dict):
            raise ValueError(f"{path.name} is not a JSON object")
        return value

    def open_output(self) -> BinaryIO:
        """The output file, for reading: a plain file, never through a link, never a FIFO."""
        fd = os.open(self.output, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ValueError(f"{self.output.name} is not a plain file")
        return os.fdopen(fd, "rb")

    def take_spec(self) -> tuple[LaunchSpec, RunnerOptions]:
        """The spec, deleted as it is read: its secrets stay on the shared disk no longer."""
        raw = self.read(self.spec)
        if raw is None:
            raise FileNotFoundError(f"no spec.json in {self.folder}")
        self.spec.unlink()
        return spec_from_json(raw)

    def read_started(self) -> Started | None:
        raw = self.read(self.started)
        return None if raw is None else _typed(Started, {**raw, "gpus": tuple(raw["gpus"])})

    def read_sample(self) -> Sample | None:
        raw = self.read(self.usage)
        return None if raw is None else _typed(Sample, raw)

    def read_exit(self) -> Ended | None:
        raw = self.read(self.exit)
        return None if raw is None else _typed(Ended, raw)

    def read_exit_quietly(self) -> Ended | None:
        """The exit record, or None where there is none readable."""
        try:
            return self.read_exit()
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def read_job(self) -> JobRecord | None:
        raw = self.read(self.job)
        return None if raw is None else _typed(JobRecord, raw)

    def stop_grace(self) -> float | None:
        raw = self.read(self.stop)
        return None if raw is None else float(raw["grace_s"])


# What each record's fields may hold, as JSON gives them back (a bool is not a number here).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "bool": (bool,),
    "float": (int, float),
    "int | None": (int, type(None)),
    "tuple[str, ...]": (tuple,),
}

R = TypeVar("R")


def _typed(cls: type[R], raw: dict[str, Any]) -> R:
    """The record, or TypeError when a field is of another type than its declared one (an
    exit code of "0" must not read as an exit of its own)."""
    record = cls(**raw)
    for field in dataclasses.fields(record):  # type: ignore[arg-type]
        value = getattr(record, field.name)
        allowed = _FIELD_TYPES[str(field.type)]
        if isinstance(value, bool) and bool not in allowed:
            raise TypeError(f"{field.name} is not a {field.type}")
        if not isinstance(value, allowed):
            raise TypeError(f"{field.name} is not a {field.type}")
    return record


def output_line(line: OutputLine) -> bytes:
    return json.dumps({"s": line.stream.value, "t": line.time, "x": line.text}).encode() + b"\n"


def bounded_output_line(line: OutputLine) -> bytes:
    """The line as the runner writes it, at most MAX_LINE_BYTES: the service takes a longer
    one for a line still being written, and would read no further. JSON spells a character
    in up to 12 bytes (a surrogate pair of escapes), so a cut to MAX_LINE_BYTES // 16
    characters always fits."""
    record = output_line(line)
    if len(record) <= MAX_LINE_BYTES:
        return record
    cut = line.text[: MAX_LINE_BYTES // 16] + " [node runner: line cut]"
    return output_line(dataclasses.replace(line, text=cut))


def parse_output_line(raw: bytes) -> OutputLine:
    value = json.loads(raw)
    return OutputLine(OutputStream(value["s"]), str(value["x"]), float(value["t"]))
