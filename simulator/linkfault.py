"""A TCP relay between two real endpoints that can be cut and restored: the station's uplink as a fault."""

from __future__ import annotations

import logging
import selectors
import socket
import threading

log = logging.getLogger(__name__)


class LinkRelay:
    """Relays loopback TCP from `listen_port` to `target`; `down()` drops every connection and refuses new ones."""

    def __init__(self, target: tuple[str, int], listen_port: int = 0) -> None:
        self.target = target
        self._srv = socket.create_server(("127.0.0.1", listen_port))
        self._srv.setblocking(False)
        self.port = self._srv.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._cut: threading.Event | None = None  # a cut down() asked for, done by the relay's own thread
        self.cuts = 0
        self._thread = threading.Thread(target=self._serve, name="link-relay", daemon=True)
        self._thread.start()

    @property
    def is_up(self) -> bool:
        """True while traffic passes."""
        return self._up.is_set()

    def down(self) -> None:
        """Cut the link: close live connections, refuse new ones; returns once they are closed.

        The relay's thread closes them itself: a socket closed under its selector could leave a key whose file
        descriptor the next accepted connection reuses, and registering that one then failed and ended the
        relay for good."""
        self._up.clear()
        self.cuts += 1
        done = threading.Event()
        with self._lock:
            self._cut = done
        if not done.wait(5) and not self._thread.is_alive():
            self._close_pairs(None)  # no thread to do it

    def up(self) -> None:
        """Restore the link."""
        self._up.set()

    def close(self) -> None:
        """Stop relaying and free the port."""
        self.down()
        self._stop.set()
        self._thread.join(5)
        self._srv.close()

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._srv, selectors.EVENT_READ, None)
        while not self._stop.is_set():
            with self._lock:
                cut, self._cut = self._cut, None
            if cut is not None:
                self._close_pairs(sel)
                cut.set()
            for key, _ in sel.select(timeout=0.1):
                if key.data is None:
                    self._accept(sel)
                else:
                    self._pump(sel, key.fileobj, key.data)
            with self._lock:
                live = {s for pair in self._pairs for s in pair}
            for key in list(sel.get_map().values()):
                if key.data is not None and key.fileobj not in live:
                    sel.unregister(key.fileobj)
        sel.close()

    def _close_pairs(self, sel: selectors.BaseSelector | None) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                if sel is not None:
                    try:
                        sel.unregister(s)
                    except (KeyError, ValueError):
                        pass
                try:
                    s.close()
                except OSError:
                    pass

    def _accept(self, sel: selectors.BaseSelector) -> None:
        try:
            client, _ = self._srv.accept()
        except BlockingIOError:
            return
        if not self.is_up:
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=2)
        except OSError as exc:
            log.info("link relay: target %s unreachable: %s", self.target, exc)
            client.close()
            return
        client.setblocking(False)
        upstream.setblocking(False)
        with self._lock:
            self._pairs.append((client, upstream))
        sel.register(client, selectors.EVENT_READ, upstream)
        sel.register(upstream, selectors.EVENT_READ, client)

    def _pump(self, sel: selectors.BaseSelector, src, dst) -> None:
        try:
            data = src.recv(65536)
            if data:
                dst.setblocking(True)  # small relayed bursts; a short blocking send keeps order simple
                dst.sendall(data)
                dst.setblocking(False)
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        with self._lock:
            self._pairs = [p for p in self._pairs if src not in p]
        for s in (src, dst):
            try:
                sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()
