"""What a client call can fail with, besides InvalidRequest and InfraError (kept light: the
socket client imports it without the store)."""


class NotFound(LookupError):
    def __init__(self, test_id: int | str):
        message = test_id if isinstance(test_id, str) else f"no test with id {test_id}; `agenttui history` lists them"
        super().__init__(message)


class AccessDenied(PermissionError):
    pass


class NotActionable(ValueError):
    """The request makes no sense in the test's state (cancel a finished test, ...)."""
