"""Statuses as CML spells them: every spelling of a known status reads as that status, and a
status nobody documents reads as unknown (None), never as done."""

from __future__ import annotations

import pytest

from core.targets.cml.models import BuildStatus, DeploymentStatus, RegisteredVersionStatus
from core.targets.cml.statuses import build_status, deployment_status, version_status

BUILDS = [
    ("built", BuildStatus.BUILT),
    ("Built", BuildStatus.BUILT),
    ("BUILT", BuildStatus.BUILT),
    ("BUILD_BUILT", BuildStatus.BUILT),
    ("model_build_built", BuildStatus.BUILT),
    ("build failed", BuildStatus.BUILD_FAILED),
    ("BUILD_FAILED", BuildStatus.BUILD_FAILED),
    ("Build Failed", BuildStatus.BUILD_FAILED),
    ("failed", BuildStatus.BUILD_FAILED),
    ("timedout", BuildStatus.TIMEDOUT),
    ("TIMED_OUT", BuildStatus.TIMEDOUT),
    (" pending ", BuildStatus.PENDING),
    ("BUILD_QUEUED", BuildStatus.QUEUED),
    ("Pushing", BuildStatus.PUSHING),
    ("succeeded", BuildStatus.SUCCEEDED),
    ("unknown", BuildStatus.UNKNOWN),
    ("compiling", None),
    ("BUILD_", None),
    ("", None),
    (None, None),
]

DEPLOYMENTS = [
    ("deployed", DeploymentStatus.DEPLOYED),
    ("Deployed", DeploymentStatus.DEPLOYED),
    ("DEPLOYED", DeploymentStatus.DEPLOYED),
    ("MODEL_DEPLOYMENT_DEPLOYED", DeploymentStatus.DEPLOYED),
    ("model-deployment-deploying", DeploymentStatus.DEPLOYING),
    ("deployment_failed", DeploymentStatus.FAILED),
    ("MODEL_DEPLOYMENT_FAILED", DeploymentStatus.FAILED),
    ("Stopping", DeploymentStatus.STOPPING),
    ("stopped", DeploymentStatus.STOPPED),
    ("pending", DeploymentStatus.PENDING),
    ("MODEL_DEPLOYMENT_WARMING", None),
    ("deployed-ish", None),
    ("built", None),
    ("", None),
    (None, None),
]

VERSIONS = [
    ("REGISTERED", RegisteredVersionStatus.REGISTERED),
    ("registered", RegisteredVersionStatus.REGISTERED),
    ("MODEL_VERSION_REGISTERED", RegisteredVersionStatus.REGISTERED),
    ("READY", RegisteredVersionStatus.REGISTERED),
    ("REGISTERING", RegisteredVersionStatus.REGISTERING),
    ("PENDING_REGISTRATION", RegisteredVersionStatus.REGISTERING),
    ("FAILED", RegisteredVersionStatus.FAILED),
    ("FAILED_REGISTRATION", RegisteredVersionStatus.FAILED),
    ("ARCHIVED", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("raw", "expected"), BUILDS)
def test_build_statuses(raw: str | None, expected: BuildStatus | None) -> None:
    assert build_status(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), DEPLOYMENTS)
def test_deployment_statuses(raw: str | None, expected: DeploymentStatus | None) -> None:
    assert deployment_status(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), VERSIONS)
def test_registered_version_statuses(
    raw: str | None, expected: RegisteredVersionStatus | None
) -> None:
    assert version_status(raw) == expected
