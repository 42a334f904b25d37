"""Every failure a user can meet has its own exit code."""

from __future__ import annotations

from cofre.cli.exitcodes import ExitCode, LocalFileError, UsageError, exit_code_for
from cofre.errors import (
    BadRequest,
    Conflict,
    IntegrityError,
    NotEnoughNodes,
    NotFound,
    ReplicaFailed,
    RoleRefused,
    Unauthorized,
    Unavailable,
    error_from_problem,
)


def test_each_error_kind_maps_to_its_code() -> None:
    assert exit_code_for(Unavailable("x")) == ExitCode.UNAVAILABLE
    assert exit_code_for(NotFound("x")) == ExitCode.NOT_FOUND
    assert exit_code_for(NotEnoughNodes("x")) == ExitCode.NOT_ENOUGH_NODES
    assert exit_code_for(Unauthorized("x")) == ExitCode.UNAUTHORIZED
    assert exit_code_for(IntegrityError("x")) == ExitCode.INTEGRITY
    assert exit_code_for(LocalFileError("x")) == ExitCode.LOCAL_FILE
    assert exit_code_for(UsageError("x")) == ExitCode.USAGE
    assert exit_code_for(BadRequest("x")) == ExitCode.USAGE
    assert exit_code_for(ReplicaFailed("x")) == ExitCode.UNAVAILABLE
    assert exit_code_for(Conflict("x")) == ExitCode.FAILURE
    refused = {"code": "role_refused", "detail": "key 'k' has role backup; ..."}
    assert exit_code_for(error_from_problem(refused, status=403)) == ExitCode.REFUSED
    assert exit_code_for(RoleRefused("x")) == ExitCode.REFUSED
    assert exit_code_for(RuntimeError("x")) == ExitCode.FAILURE


def test_codes_are_distinct() -> None:
    assert len({int(c) for c in ExitCode}) == len(ExitCode)


def test_not_enough_nodes_and_unavailable_share_503_but_not_a_code() -> None:
    nen = error_from_problem({"code": "not_enough_nodes", "detail": "d"}, status=503)
    down = error_from_problem({"code": "unavailable", "detail": "d"}, status=503)
    assert exit_code_for(nen) == ExitCode.NOT_ENOUGH_NODES
    assert exit_code_for(down) == ExitCode.UNAVAILABLE
