from tests.e2e.conftest import box, running  # noqa: F401  (the sandbox fixtures)
