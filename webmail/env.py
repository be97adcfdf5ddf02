"""Small typed readers for settings from the environment.

Each fails loudly on a bad value, so a typo in a deployment stops the process at start-up
instead of surfacing as odd behaviour later. A secret may come from ``<NAME>_FILE``.
"""

from __future__ import annotations

import math
import os

from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str = "") -> str:
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            with open(file_name, encoding="utf-8") as fh:
                return fh.read().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, not {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None
    if math.isnan(value):
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}")
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, not {value}")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_list(name: str, default: list[str] | None = None, *, sep: str = ",") -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(sep) if item.strip()]


def parse_size(raw: str) -> int:
    """Parse a size such as ``25M``, ``1G``, ``512k`` or ``1048576`` into bytes."""
    text = raw.strip().upper().removesuffix("B")
    multipliers = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    factor = 1
    if text and text[-1] in multipliers:
        factor = multipliers[text[-1]]
        text = text[:-1]
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a size: {raw!r} (use a number with an optional K, M, G or T)") from None
    if value < 0:
        raise ValueError(f"a size cannot be negative: {raw!r}")
    return int(value * factor)


def env_size(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse_size(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def parse_transports(raw: str) -> dict[str, tuple[str, int]]:
    """Parse ``domain=host:port,...`` (Postfix transport-map style) into a dict."""
    result: dict[str, tuple[str, int]] = {}
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        domain, sep, hop = item.partition("=")
        if not sep or not domain.strip() or not hop.strip():
            raise ValueError(f"transport entry {item!r} is not domain=host:port")
        host, _, port = hop.strip().rpartition(":")
        if not host:
            host, port = hop.strip(), "25"
        host = host.strip("[]")
        try:
            port_number = int(port)
        except ValueError:
            raise ValueError(f"transport entry {item!r} has a bad port {port!r}") from None
        result[domain.strip().lower().rstrip(".")] = (host, port_number)
    return result
