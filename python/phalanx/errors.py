"""phalanx.Error: a non-OK Status from the C++ client, as a Python exception.

Every error carries ``code`` (the StatusCode name, e.g. ``"NotFound"``) and
``message``; each code has its subclass (``phalanx.NotFoundError``, ...), so
``except phalanx.DeadlineExceededError`` and ``e.code == "DeadlineExceeded"``
both work.
"""

CODES = (
    "InvalidArgument", "NotFound", "AlreadyExists", "FailedPrecondition",
    "Unavailable", "DeadlineExceeded", "Aborted", "Cancelled",
    "ResourceExhausted", "DataLoss", "Unauthenticated", "Internal",
)


class Error(Exception):
    """A Phalanx Status: ``code`` (StatusCode name) and ``message``."""

    code = "Unknown"

    def __init__(self, message, code=None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message

    def __str__(self):
        return f"{self.code}: {self.message}"


_BY_CODE = {}
for _code in CODES:
    _cls = type(_code + "Error", (Error,), {"code": _code, "__doc__": f"Status code {_code}."})
    globals()[_cls.__name__] = _cls
    _BY_CODE[_code] = _cls
del _code, _cls


def error_for(code, message):
    """The exception for a Status (used by the C++ module)."""
    cls = _BY_CODE.get(code)
    return cls(message) if cls else Error(message, code)


__all__ = ["Error", "error_for", "CODES"] + [c + "Error" for c in CODES]
