"""The image endpoint's query parameters (protocols/img/params.py)."""

from __future__ import annotations

import pytest

from protocols.img.errors import InvalidParameter
from protocols.img.params import MAX_SIDE, ImageParams, apply_dpr, parse_params


def test_defaults_and_every_parameter() -> None:
    assert parse_params("") == ImageParams()
    params = parse_params(
        "w=400&h=300&fit=cover&format=webp&q=70&blur=2.5&sharpen=1&rotate=90&gravity=sm")
    assert params == ImageParams(
        width=400, height=300, fit="cover", format="webp", quality=70, blur=2.5,
        sharpen=1.0, rotate=90, gravity="sm")


@pytest.mark.parametrize("query", [
    "w=200&h=200", [("h", "200"), ("w", "200")], {"w": "200", "h": "200"},
])
def test_every_input_shape_parses_alike(query: object) -> None:
    assert parse_params(query) == ImageParams(width=200, height=200)  # type: ignore[arg-type]


def test_the_canonical_form_ignores_order_and_fills_defaults() -> None:
    a = parse_params("w=200&h=200").canonical("webp")
    b = parse_params("h=200&w=200").canonical("webp")
    assert a == b == (
        "blur=0&fit=fit&format=webp&gravity=ce&h=200&q=80&rotate=0&sharpen=0&w=200")


@pytest.mark.parametrize(("one", "other"), [
    ("w=100&dpr=2", "w=200"),  # dpr folds into the size
    ("w=100&h=50&fit=contain", "w=100&h=50&fit=fit"),  # contain is fit
    ("w=100&fit=cover", "w=100"),  # one side: every mode but crop is fit
    ("w=100&h=50&gravity=no", "w=100&h=50"),  # fit has no use for gravity
    ("format=jpg", "format=jpeg"),
    ("q=80&format=webp", "format=webp"),  # the default quality
    ("blur=1.50", "blur=1.5"),
    ("fit=CROP&gravity=EA&w=5", "fit=crop&gravity=ea&w=5"),
    ("dpr=3", ""),  # dpr without a size has no effect
])
def test_requests_that_produce_the_same_bytes_share_a_key(one: str, other: str) -> None:
    fmt = parse_params(one).format or "webp"
    assert parse_params(one).canonical(fmt) == parse_params(other).canonical(fmt)


def test_requests_that_differ_have_different_keys() -> None:
    keys = {parse_params(q).canonical("webp") for q in (
        "w=100", "h=100", "w=100&h=100", "w=100&h=100&fit=cover",
        "w=100&h=100&fit=cover&gravity=no", "w=100&fit=crop", "w=100&q=50", "w=100&rotate=90",
        "w=100&blur=1", "w=100&sharpen=1")}
    assert len(keys) == 10


def test_quality_per_format_and_png_is_lossless() -> None:
    params = parse_params("")
    assert [params.quality_for(f) for f in ("jpeg", "webp", "avif", "png")] == [80, 80, 60, None]
    assert "q=lossless" in parse_params("q=30").canonical("png")
    assert parse_params("q=30").canonical("png") == parse_params("").canonical("png")


def test_the_canonical_form_needs_the_requested_format() -> None:
    with pytest.raises(ValueError, match="format=png"):
        parse_params("format=png").canonical("webp")


@pytest.mark.parametrize(("query", "size"), [
    ("w=100&dpr=2", (200, None)),
    ("w=100&h=60&dpr=1.5", (150, 90)),
    ("h=333&dpr=1.25", (None, 416)),
    ("w=5000&h=2500&dpr=2", (MAX_SIDE, 4096)),  # capped, aspect kept
    ("w=8192&dpr=4", (MAX_SIDE, None)),
    ("dpr=2", (None, None)),
])
def test_dpr_multiplies_the_size_and_is_capped(query: str, size: tuple) -> None:
    params = parse_params(query)
    assert (params.width, params.height) == size


def test_apply_dpr_never_returns_a_zero_side() -> None:
    assert apply_dpr(1, 8192, 4.0) == (1, 8192)


@pytest.mark.parametrize(("query", "param", "fragment"), [
    ("w=0", "w", "integer from 1 to 8192"),
    ("w=8193", "w", "integer from 1 to 8192"),
    ("h=abc", "h", "integer"),
    ("w=1.5", "w", "integer"),
    ("w=-1", "w", "integer"),
    ("w=+5", "w", "integer"),
    ("w=", "w", "integer"),
    ("h", "h", "integer"),
    ("dpr=0.5", "dpr", "from 1 to 4"),
    ("dpr=4.5", "dpr", "from 1 to 4"),
    ("dpr=nan", "dpr", "device pixel ratio"),
    ("dpr=1e1", "dpr", "device pixel ratio"),
    ("fit=stretch", "fit", "fit, contain, fill, cover, crop, pad"),
    ("format=gif", "format", "webp, avif, jpeg"),
    ("q=0", "q", "from 1 to 100"),
    ("q=101", "q", "from 1 to 100"),
    ("blur=0.1", "blur", "from 0.3 to 100 or 0 for none"),
    ("blur=101", "blur", "blur sigma"),
    ("sharpen=10.5", "sharpen", "from 0 to 10"),
    ("rotate=45", "rotate", "0, 90, 180 or 270"),
    ("rotate=-90", "rotate", "0, 90, 180 or 270"),
    ("rotate=360", "rotate", "0, 90, 180 or 270"),
    ("gravity=nw", "gravity", "ce, sm, no, so, ea, we"),
    ("width=100", "width", "unknown parameter 'width'"),
    ("w=1&w=2", "w", "more than once"),
    ("&".join(f"w{i}=1" for i in range(40)), "query", "at most 32"),
])
def test_bad_input_names_the_parameter(query: str, param: str, fragment: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_params(query)
    assert caught.value.param == param
    assert fragment in caught.value.message
    assert caught.value.status == 400


def test_an_unknown_name_is_echoed_safely() -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_params([("x\x00\n" + "y" * 100, "1")])
    assert "\x00" not in caught.value.message and "\n" not in caught.value.message
    assert len(caught.value.param) < 50


def test_parameters_the_endpoint_consumes_are_ignored() -> None:
    assert parse_params("w=10&sig=abc&expires=1", ignore={"sig", "expires"}).width == 10
    with pytest.raises(InvalidParameter):
        parse_params("w=10&sig=abc")
