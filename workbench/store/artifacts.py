"""Artifact storage (dataset files, exports, checkpoints): a local directory or ``s3://``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from pyarrow import fs as pafs

from workbench.store.s3 import S3Options, is_s3_uri


class ArtifactStore:
    """Write-once files under one root URI, through pyarrow's filesystem layer (local or S3)."""

    def __init__(self, root_uri: str, s3: S3Options | None = None) -> None:
        """Open the root; ``s3`` configures the endpoint and credentials of an s3:// root."""
        self.root_uri = root_uri.rstrip("/")
        if "://" not in self.root_uri:
            pafs.LocalFileSystem().create_dir(self.root_uri, recursive=True)
        if s3 is not None and is_s3_uri(self.root_uri):
            self._fs, self._root = s3.filesystem(), self.root_uri.removeprefix("s3://")
        else:
            self._fs, self._root = pafs.FileSystem.from_uri(self.root_uri)

    def uri(self, key: str) -> str:
        """The full URI of a key."""
        return f"{self.root_uri}/{key}"

    def write_bytes(self, key: str, data: bytes) -> str:
        """Store bytes under key; the file appears whole or not at all. Returns its URI."""
        path = f"{self._root}/{key}"
        parent = path.rsplit("/", 1)[0]
        self._fs.create_dir(parent, recursive=True)
        if isinstance(self._fs, pafs.LocalFileSystem):
            tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
            with self._fs.open_output_stream(tmp) as out:
                out.write(data)
            _fsync(tmp)
            self._fs.move(tmp, path)
        else:
            with self._fs.open_output_stream(path) as out:
                out.write(data)
        return self.uri(key)

    def read_bytes(self, key: str) -> bytes:
        """The whole file."""
        with self._fs.open_input_stream(f"{self._root}/{key}") as stream:
            return stream.read()

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The file in chunks, for streaming responses."""
        with self._fs.open_input_stream(f"{self._root}/{key}") as stream:
            while chunk := stream.read(chunk_size):
                yield chunk

    def exists(self, key: str) -> bool:
        """Whether a file exists under key."""
        return self._fs.get_file_info(f"{self._root}/{key}").type == pafs.FileType.File

    def delete_prefix(self, prefix: str) -> None:
        """Remove every file under a prefix (used by erasure)."""
        path = f"{self._root}/{prefix}"
        if self._fs.get_file_info(path).type == pafs.FileType.Directory:
            self._fs.delete_dir(path)


def _fsync(path: str) -> None:
    import os

    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
