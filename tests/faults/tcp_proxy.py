"""A TCP proxy on 127.0.0.1 in front of an HTTP server (the S3 server) that can cut connections: the next
one after it carried some bytes toward the server (a connection dropped during an upload), or every one."""

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
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}"

    def _serve(self, client: socket.socket) -> None:
        if self.cut_every_connection:
            self.cuts += 1
            client.close()
            return
        server = socket.create_connection(self._target)
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
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.close()
                except OSError:
                    pass
