"""TCP proxies on 127.0.0.1 in front of an HTTP server (the S3 server) that fail connections on purpose: cut the
next one after it carried some bytes toward the server (a connection dropped during an upload), cut every one, or
stall (stop forwarding in both directions, as a dead link or a hung server does, until resumed). SilentServer is
an endpoint that accepts connections and never answers."""

import socket
import threading
from urllib.parse import urlsplit

from tests.faults.proxy import LoopbackProxy


class CuttingProxy(LoopbackProxy):
    def __init__(self, target_url: str):
        parts = urlsplit(target_url)
        self._target = (parts.hostname, parts.port)
        self.cut_next_after_bytes: int | None = None  # cut the next connection once it sent this many bytes
        self.cut_every_connection = False
        self.cuts = 0
        self._lock = threading.Lock()
        self._flowing = threading.Event()  # cleared: nothing is forwarded, new connections wait
        self._flowing.set()
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}"

    def stall(self) -> None:
        """Stop forwarding, mid-stream: bytes already sent wait in the proxy, new connections are accepted and
        hear nothing."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def _serve(self, client: socket.socket) -> None:
        if self.cut_every_connection:
            self.cuts += 1
            client.close()
            return
        threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self._flowing.wait()
        try:
            server = socket.create_connection(self._target)
        except OSError:
            client.close()
            return
        threading.Thread(target=self._upstream, args=(client, server), daemon=True).start()
        threading.Thread(target=self._pipe, args=(server, client), daemon=True).start()

    def _upstream(self, client: socket.socket, server: socket.socket) -> None:
        sent = 0
        try:
            while data := client.recv(65536):
                sent += len(data)
                with self._lock:
                    cut_one = self.cut_next_after_bytes is not None and sent >= self.cut_next_after_bytes
                    if cut_one:
                        self.cut_next_after_bytes = None
                    cut = cut_one or self.cut_every_connection  # kept-alive connections too
                    self.cuts += cut
                if cut:
                    break
                self._flowing.wait()
                server.sendall(data)
        except OSError:
            pass
        finally:
            for end in (client, server):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self._flowing.wait()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.close()
                except OSError:
                    pass


class SilentServer(LoopbackProxy):
    """An endpoint on 127.0.0.1 that accepts every connection and never says a word (a hung server, or a load
    balancer in front of a dead one); `url` is its address."""

    def __init__(self) -> None:
        self.connections: list[socket.socket] = []  # kept open: closing one would answer the client
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}"

    def _serve(self, client: socket.socket) -> None:
        self.connections.append(client)

    def close(self) -> None:
        super().close()
        for connection in self.connections:
            connection.close()
