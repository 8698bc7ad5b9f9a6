"""ml/errors.py: one root for every error the ml package raises."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import ml
from ml.data.neu import ImageError
from ml.errors import CalibrationError, ConformalError, ManifestError, MLError, MLInputError


@pytest.mark.parametrize(
    "error", [MLInputError, ManifestError, CalibrationError, ConformalError, ImageError]
)
def test_each_error_is_an_ml_error_and_still_a_value_error(error: type[Exception]) -> None:
    assert issubclass(error, MLError)
    # Callers written before the root existed catch ValueError; they must keep working.
    assert issubclass(error, ValueError)
    with pytest.raises(MLError, match="the message"):
        raise error("the message")


def test_every_exception_defined_in_ml_derives_from_the_root() -> None:
    found: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(ml.__path__, prefix="ml."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == info.name and issubclass(obj, BaseException):
                found.append(obj)
    outside = [f"{e.__module__}.{e.__qualname__}" for e in found if not issubclass(e, MLError)]
    assert not outside, f"exceptions outside the MLError tree: {outside}"
    assert {MLError, MLInputError, ManifestError, CalibrationError, ConformalError} <= set(found)
