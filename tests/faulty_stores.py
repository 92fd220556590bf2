"""Backup stores with faults injected through the store interface (store.interface), not by patching
private names: a store whose table writers or readers call a hook on every write or read, and whose set writers call
one right before and one right after publishing; and a stored file changed in place, as failing storage or a person
could."""

from collections.abc import Callable
from pathlib import Path

from pgvector_pipeline.store.codecs import UNCOMPRESSED
from pgvector_pipeline.store.local import LocalBackupStore
from pgvector_pipeline.store.manifest import Manifest

# hook(table, count so far): called before each write (CSV line) or read; raise or act to inject the fault.
Hook = Callable[[str, int], None]
# before_publish(timestamp): called when a set writer is asked to publish, before it does.
BeforePublishHook = Callable[[str], None]
# on_publish(manifest): called right after a set writer published the set (every file has its final name).
PublishHook = Callable[[Manifest], None]


class _Counting:
    """Delegates to `inner`, calling `hook(table, calls)` before each call of the method named `method`."""

    def __init__(self, inner, table: str, hook: Hook, *methods: str):
        self._inner, self._table, self._hook, self._calls = inner, table, hook, 0
        for method in methods:
            setattr(self, method, self._counted(getattr(inner, method)))

    def _counted(self, real):
        def call(*args, **kwargs):
            self._calls += 1
            self._hook(self._table, self._calls)
            return real(*args, **kwargs)

        return call

    def __getattr__(self, name):
        return getattr(self._inner, name)


class _Wrapped:
    """Delegates to `inner` (a set writer or reader), entered and left with it; `hook` goes to its files."""

    def __init__(self, inner, hook: Hook):
        self._inner, self._hook = inner, hook

    def __enter__(self):
        self._inner.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self._inner.__exit__(*exc_info)

    def __getattr__(self, name):
        return getattr(self._inner, name)


class _SetWriter(_Wrapped):
    def __init__(self, inner, hook: Hook, before_publish: BeforePublishHook, on_publish: PublishHook):
        super().__init__(inner, hook)
        self._before_publish, self._on_publish = before_publish, on_publish

    def open_table(self, table, progress=None, compression=UNCOMPRESSED, set_format="csv"):
        return _Counting(self._inner.open_table(table, progress, compression, set_format), table, self._hook, "write")

    def publish(self, manifest):
        self._before_publish(self._inner.timestamp)
        where = self._inner.publish(manifest)
        self._on_publish(manifest)
        return where


class _SetReader(_Wrapped):
    def file(self, table):
        return _Counting(self._inner.file(table), table, self._hook, "read", "readinto")


class Faulty:
    """Any backup store whose table writers call `on_write`, whose held files call `on_read` and whose set writers
    call `before_publish` before publishing and `on_publish` once the set is published; everything else is the store's
    own."""

    def __init__(
        self,
        inner,
        *,
        on_write: Hook | None = None,
        on_read: Hook | None = None,
        before_publish: BeforePublishHook | None = None,
        on_publish: PublishHook | None = None,
    ):
        self._inner = inner
        self._on_write = on_write or (lambda table, calls: None)
        self._on_read = on_read or (lambda table, calls: None)
        self._before_publish = before_publish or (lambda timestamp: None)
        self._on_publish = on_publish or (lambda manifest: None)

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def new_set(self, *args, **kwargs):
        return _SetWriter(self._inner.new_set(*args, **kwargs), self._on_write, self._before_publish, self._on_publish)

    def read_set(self, backup_set, tables):
        return _SetReader(self._inner.read_set(backup_set, tables), self._on_read)


def FaultyStore(root, *, on_write: Hook | None = None, on_read: Hook | None = None) -> Faulty:
    """A LocalBackupStore at `root` with faults (see Faulty)."""
    return Faulty(LocalBackupStore(root), on_write=on_write, on_read=on_read)


def replace_stored_file(store, task: str, name: str, change: Callable[[bytes], bytes]) -> None:
    """Rewrite one file of a location in place (a local or S3 store), as failing storage or someone with write access
    to the store could."""
    if hasattr(store, "client"):
        key = store.location_key(task, name)
        data = store.client.get_object(Bucket=store.root.bucket, Key=key)["Body"].read()
        store.client.put_object(Bucket=store.root.bucket, Key=key, Body=change(data))
    else:
        path = Path(store.location(task)) / name
        path.write_bytes(change(path.read_bytes()))


def flip_a_byte(data: bytes) -> bytes:
    """`data` with one bit of its middle byte flipped: the same size, another sha256 (any codec)."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]
