"""Just enough of RFC 6455 for a test client that reads what a server sends (server frames are never masked).

The tests that need it talk to a real server over a plain or TLS socket, with a chosen Origin and cookie,
which a browser or the Channels test client would not let them set.
"""
import base64
import os
import re
import socket


class RawWebSocket:
    def __init__(self, sock: socket.socket, *, host: str, path: str, origin: str | None = None, cookie: str = ""):
        self.sock = sock
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"Origin: {origin}"] if origin else []
        lines += [f"Cookie: {cookie}"] if cookie else []
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                break
            head += chunk
        self.status = int(re.match(rb"HTTP/1.1 (\d+)", head).group(1)) if head else 0

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the socket closed without a close frame")
            data += chunk
        return data

    def frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame: 0x1 text, 0x8 close (payload starts with the code)."""
        first, second = self._read(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(self._read(2), "big")
        elif length == 127:
            length = int.from_bytes(self._read(8), "big")
        return first & 0x0F, self._read(length)

    def close(self) -> None:
        self.sock.close()
