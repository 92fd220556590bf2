"""Backup stores with faults injected through the store interface (store.interface), not by patching
private names: a store whose table writers or readers call a hook on every write or read, and whose set writers
call one before publishing."""

from collections.abc import Callable

from pgvector_pipeline.store.codecs import UNCOMPRESSED
from pgvector_pipeline.store.local import LocalBackupStore

# hook(table, count so far): called before each write (CSV line) or read; raise or act to inject the fault.
Hook = Callable[[str, int], None]
# hook(timestamp): called when a set writer is asked to publish, before it does.
PublishHook = Callable[[str], None]


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
    def __init__(self, inner, hook: Hook, on_publish: PublishHook):
        super().__init__(inner, hook)
        self._on_publish = on_publish

    def open_table(self, table, progress=None, compression=UNCOMPRESSED):
        return _Counting(self._inner.open_table(table, progress, compression), table, self._hook, "write")

    def publish(self, manifest):
        self._on_publish(self._inner.timestamp)
        return self._inner.publish(manifest)


class _SetReader(_Wrapped):
    def file(self, table):
        return _Counting(self._inner.file(table), table, self._hook, "read", "readinto")


class Faulty:
    """Any backup store whose table writers call `on_write`, whose held files call `on_read` and whose set writers
    call `on_publish` before publishing; everything else is the store's own."""

    def __init__(
        self,
        inner,
        *,
        on_write: Hook | None = None,
        on_read: Hook | None = None,
        on_publish: PublishHook | None = None,
    ):
        self._inner = inner
        self._on_write = on_write or (lambda table, calls: None)
        self._on_read = on_read or (lambda table, calls: None)
        self._on_publish = on_publish or (lambda timestamp: None)

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def new_set(self, *args, **kwargs):
        return _SetWriter(self._inner.new_set(*args, **kwargs), self._on_write, self._on_publish)

    def read_set(self, backup_set, tables):
        return _SetReader(self._inner.read_set(backup_set, tables), self._on_read)


def FaultyStore(root, *, on_write: Hook | None = None, on_read: Hook | None = None) -> Faulty:
    """A LocalBackupStore at `root` with faults (see Faulty)."""
    return Faulty(LocalBackupStore(root), on_write=on_write, on_read=on_read)
