from cofre.errors import (
    BadRequest,
    IncompleteUpload,
    IntegrityError,
    NotEnoughNodes,
    NotFound,
    Unavailable,
    error_from_problem,
)


def test_problem_round_trip_keeps_class_and_extras() -> None:
    for error in [
        NotFound("no file x"),
        IncompleteUpload("2 missing", missing=2),
        NotEnoughNodes("need 3"),
        IntegrityError("bad"),
    ]:
        back = error_from_problem(error.to_problem(), status=error.status)
        assert type(back) is type(error)
        assert back.detail == error.detail
        assert back.extra == error.extra


def test_unknown_codes_fall_back_by_status() -> None:
    assert isinstance(error_from_problem({"detail": "x"}, status=404), NotFound)
    assert isinstance(error_from_problem({}, status=502), Unavailable)
    assert isinstance(error_from_problem({"code": "weird"}, status=418), BadRequest)
