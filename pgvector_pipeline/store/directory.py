"""Directories of the backup root opened once, and every file in them reached through the directory's
descriptor: safe by construction against what anyone who can write the root can plant there.

Anyone who can write into the root can plant symlinks (to /usr/bin/passwd, to a secret), FIFOs (an open
for reading blocks forever), devices, directories named like files, and can swap a directory for a
symlink between a check and a use. So:
- the root is opened once (it is configuration and may itself be a symlink); every directory below it
  is opened relative to its parent with O_NOFOLLOW, and every file relative to its directory
  (`dir_fd`), so a path swapped after it was opened cannot redirect a read or a write;
- files are opened with O_NOFOLLOW (a symlink is refused, never followed) and O_NONBLOCK (a FIFO
  cannot block), and used only when `fstat` says they are regular files;
- a mode is set (fchmod) only on files this process created: never on something found there.
"""

import errno
import fcntl
import hashlib
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path

_READ_CHUNK = 1 << 20
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeEntry(OSError):
    """A name under the root that is not what it must be: a symlink, FIFO, device, or a directory named like a
    file (or a file where a directory belongs). Never followed or opened; the message says what it is."""


def describe_mode(mode: int) -> str:
    """What kind of file system object a st_mode is, in words."""
    for test, kind in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISREG, "a regular file"),
    ):
        if test(mode):
            return kind
    return "an unknown kind of file"


@dataclass(frozen=True)
class Entry:
    """A name in a directory and what it is (never following a symlink)."""

    name: str
    mode: int  # st_mode from lstat; 0 when it vanished while listed
    size: int = 0  # st_size from the same lstat

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.mode)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def kind(self) -> str:
        return describe_mode(self.mode) if self.mode else "gone"


class Directory:
    """An open directory. A context manager: leaving closes its descriptor."""

    def __init__(self, fd: int, path: Path):
        self.fd = fd
        self.path = Path(path)  # for messages only: nothing is opened through it

    @classmethod
    def open_root(cls, path: Path) -> "Directory":
        """The backup root (deployment configuration: a symlink here is the deployment's choice)."""
        return cls(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), Path(path))

    def __enter__(self) -> "Directory":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def child(self, name: str, *, create: bool = False) -> "Directory":
        """The subdirectory `name`, created (0755) when missing if asked; UnsafeEntry when `name` is anything but
        a real directory, FileNotFoundError when it is missing."""
        if create:
            try:
                os.mkdir(name, 0o755, dir_fd=self.fd)
            except FileExistsError:
                pass
        try:
            return Directory(os.open(name, _DIRECTORY_FLAGS, dir_fd=self.fd), self.path / name)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeEntry(
                    exc.errno, f"{self.path / name} is {self._kind(name)}, not a directory: it is not followed"
                ) from None
            raise

    def entries(self) -> list[Entry]:
        """Every name in the directory with what it is."""
        found = []
        with os.scandir(self.fd) as listing:
            for item in listing:
                try:
                    status = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    found.append(Entry(item.name, 0))  # deleted while listed
                    continue
                found.append(Entry(item.name, status.st_mode, status.st_size))
        return found

    def lstat(self, name: str) -> os.stat_result:
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False)

    def _kind(self, name: str) -> str:
        try:
            return describe_mode(self.lstat(name).st_mode)
        except OSError:
            return "gone"

    def _checked_regular(self, fd: int, name: str) -> int:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise UnsafeEntry(errno.EINVAL, f"{self.path / name} is {describe_mode(mode)}, not a regular file")
        return fd

    def _open(self, name: str, flags: int, mode: int = 0o600) -> int:
        """os.open relative to this directory, never following a symlink, never blocking on a FIFO."""
        try:
            return os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.ENOTDIR):
                raise UnsafeEntry(exc.errno, f"{self.path / name} is {self._kind(name)}, not a regular file") from None
            raise

    def open_read(self, name: str) -> io.FileIO:
        """A regular file opened for reading (unbuffered, blocking reads once it is known to be regular)."""
        fd = self._checked_regular(self._open(name, os.O_RDONLY), name)
        os.set_blocking(fd, True)
        return io.FileIO(fd, "rb", closefd=True)

    def create(self, name: str, mode: int) -> int:
        """A new file (it must not exist) opened for writing with exactly `mode`, whatever the umask."""
        return self.create_with(name, os.O_WRONLY, mode)

    def open_or_create(self, name: str, flags: int, mode: int) -> int:
        """`name` opened with `flags` (O_WRONLY|O_APPEND, O_RDWR): created with `mode` when missing; an existing
        file must be regular and keeps its mode (nothing found in the root is chmod-ed)."""
        while True:
            try:
                return self.create_with(name, flags, mode)
            except FileExistsError:
                pass
            try:
                fd = self._checked_regular(self._open(name, flags), name)
            except FileNotFoundError:
                continue  # removed in between: create it after all
            os.set_blocking(fd, True)
            return fd

    def create_with(self, name: str, flags: int, mode: int) -> int:
        """A new file (it must not exist) opened with `flags` and exactly `mode`, whatever the umask."""
        fd = self._open(name, flags | os.O_CREAT | os.O_EXCL, mode)
        os.set_blocking(fd, True)
        os.fchmod(fd, mode)
        return fd

    def rename(self, source: str, target: str) -> None:
        os.replace(source, target, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def link(self, source: str, target: str) -> None:
        """A hard link `target` to `source` (FileExistsError when `target` exists)."""
        os.link(source, target, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)

    def unlink(self, name: str) -> int:
        """Delete `name` if it is there (a symlink is removed, never its target); bytes freed."""
        try:
            size = self.lstat(name).st_size
            os.unlink(name, dir_fd=self.fd)
            return size
        except FileNotFoundError:
            return 0

    def unlink_quietly(self, name: str) -> int:
        """unlink for cleanup: never raises over the error that made the caller clean up."""
        try:
            return self.unlink(name)
        except OSError:
            return 0

    def fsync(self) -> None:
        """Make renames and unlinks in this directory durable."""
        os.fsync(self.fd)

    def sha256(self, name: str) -> str:
        """The sha256 of a regular file in this directory, read in 1 MiB chunks."""
        digest = hashlib.sha256()
        with self.open_read(name) as file:
            while chunk := file.read(_READ_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def free_bytes(self) -> tuple[int, int]:
        """(free for unprivileged writers, total) bytes of the file system holding this directory."""
        stats = os.fstatvfs(self.fd)
        return stats.f_bavail * stats.f_frsize, stats.f_blocks * stats.f_frsize


def try_flock(fd: int, exclusive: bool) -> bool:
    """Take a shared or exclusive flock on `fd` without waiting; False when another holder is in the way."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
