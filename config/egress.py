"""A guard that refuses any network connection leaving this machine.

Installed by the test suite in its own process and, through SCRIBE_EGRESS_GUARD_LOG, in every server
and worker the tests start. A refused attempt raises EgressBlocked and is appended to the report file,
so the test that caused it fails even where the calling code swallows the exception.
"""
import ipaddress
import json
import os
import socket
import traceback

_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex
_original_getaddrinfo = socket.getaddrinfo
_report_path: str | None = None

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


class EgressBlocked(ConnectionRefusedError):
    pass


def is_local_address(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(what: str):
    message = f"outbound network access refused in an air-gapped build: {what}"
    if _report_path:
        entry = {"pid": os.getpid(), "what": what, "stack": traceback.format_stack(limit=12)}
        with open(_report_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
    raise EgressBlocked(message)


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local_address(address):
        _refuse(f"connect to {address!r}")
    return _original_connect(self, address)


def _guarded_connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local_address(address):
        _refuse(f"connect to {address!r}")
    return _original_connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    # A name lookup for an outside host is itself traffic leaving the building.
    if host is not None and not is_local_address((host,)):
        _refuse(f"name lookup of {host!r}")
    return _original_getaddrinfo(host, *args, **kwargs)


def install_guard(report_path: str | None = None) -> None:
    global _report_path
    _report_path = report_path
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    socket.getaddrinfo = _guarded_getaddrinfo


def uninstall_guard() -> None:
    socket.socket.connect = _original_connect
    socket.socket.connect_ex = _original_connect_ex
    socket.getaddrinfo = _original_getaddrinfo
