"""The errors `ml` raises: one root, `MLError`, branched by what the caller can do about it.

    MLError                  anything the ml package refuses
    ├── MLInputError         bad input data or options: fix the input (the message names the
    │                        file, line and problem); `ml.data.neu.ImageError` is one kind
    ├── ManifestError        a model directory is missing, incomplete or does not match its
    │                        manifest: the model itself is unusable
    ├── CalibrationError     calibration data is empty or inconsistent
    └── ConformalError       calibration data or levels that cannot give a valid interval

`MLError` is a `ValueError`, so callers that caught `ValueError` before there was a root keep
working; new code should catch `MLError` (or the branch it can act on).
"""

from __future__ import annotations


class MLError(ValueError):
    """Root of every error the ml package raises on purpose."""


class MLInputError(MLError):
    """Bad input data: the message names the file, line and problem."""


class ManifestError(MLError):
    """A model directory is missing, incomplete or does not match its manifest."""


class CalibrationError(MLError):
    """Calibration data is empty or inconsistent."""


class ConformalError(MLError):
    """Calibration data or levels that cannot give a valid interval."""
