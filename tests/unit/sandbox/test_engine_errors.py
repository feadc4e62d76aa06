"""Engine failures reach clients in the daemon's words, never with the engine's URL."""

from __future__ import annotations

import docker.errors
import requests

from services.sandbox.backends.docker.backend import engine_error

URL = "http+docker://localhost/v1.41/images/busybox/json"


def test_api_errors_keep_the_explanation_and_drop_the_url() -> None:
    response = requests.Response()
    response.status_code = 500
    response.url = URL
    error = docker.errors.APIError(f"500 Server Error for {URL}", response, "disk full")
    assert "http+docker" in str(error)
    assert str(engine_error(error)) == "engine error: disk full"


def test_other_sdk_errors_name_only_their_type() -> None:
    error = docker.errors.DockerException(f"Error while fetching server API version: {URL}")
    assert str(engine_error(error)) == "engine error: DockerException"
