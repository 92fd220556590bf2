"""TCP proxies on 127.0.0.1 that fail connections on purpose: DroppingProxy in front of the embedded server's
Unix socket drops a connection at the worst moment (after the server answered a COMMIT, before the client
hears the answer); tcp_proxy.CuttingProxy cuts or stalls connections to the S3 server, tcp_proxy.SilentServer
never answers."""

import socket
import threading
import time
from urllib.parse import parse_qs, urlsplit

# The simple-protocol Query message psycopg2 sends for conn.commit().
COMMIT_MESSAGE = b"Q\x00\x00\x00\x0bCOMMIT\x00"


class LoopbackProxy:
    """Accepts connections on a free port of 127.0.0.1 on a thread and hands each to `_serve` until closed.
    Subclasses set their own attributes before calling this __init__ (the thread starts at once)."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(32)
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._serve(client)

    def _serve(self, client: socket.socket) -> None:
        raise NotImplementedError


class DroppingProxy(LoopbackProxy):
    def __init__(self, server_dsn: str):
        parts = urlsplit(server_dsn)
        self.socket_path = f"{parse_qs(parts.query)['host'][0]}/.s.PGSQL.{parts.port or 5432}"
        self.database = parts.path.lstrip("/")
        self.user = parts.username
        self.drop_next_commit = False
        self.refuse_after_drop = False  # also refuse every later connection: the outcome cannot be asked
        self.refuse_new_connections = False
        self.dropped = 0
        super().__init__()

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _serve(self, client: socket.socket) -> None:
        if self.refuse_new_connections:
            client.close()
            return
        server = socket.socket(socket.AF_UNIX)
        server.connect(self.socket_path)
        held = threading.Event()  # set: the server's answers are no longer passed on
        threading.Thread(target=self._client_to_server, args=(client, server, held), daemon=True).start()
        threading.Thread(target=self._server_to_client, args=(server, client, held), daemon=True).start()

    def _client_to_server(self, client: socket.socket, server: socket.socket, held: threading.Event) -> None:
        try:
            while data := client.recv(65536):
                dropping = self.drop_next_commit and COMMIT_MESSAGE in data
                if dropping:
                    held.set()
                    self.refuse_new_connections = self.refuse_after_drop
                server.sendall(data)
                if dropping:
                    self.drop_next_commit = False
                    self.dropped += 1
                    # Let the server finish the COMMIT, then cut both sides without passing its answer on.
                    time.sleep(0.5)
                    client.shutdown(socket.SHUT_RDWR)
                    client.close()
                    server.close()
                    return
        except OSError:
            pass
        finally:
            for end in (client, server):
                try:
                    end.close()
                except OSError:
                    pass

    def _server_to_client(self, server: socket.socket, client: socket.socket, held: threading.Event) -> None:
        try:
            while (data := server.recv(65536)) and not held.is_set():
                client.sendall(data)
        except OSError:
            pass
