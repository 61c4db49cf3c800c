"""A real S3-protocol server for the tests: moto's server on 127.0.0.1, with authentication.

`S3Server` starts `python -m moto.server` as a process, with IAM authentication enforced
(`INITIAL_NO_AUTH_ACTION_COUNT`): the first three requests create a user, its access key
and an allow-all policy; every later request must be signed with that key, so wrong
credentials are rejected as a real endpoint would. `FaultProxy` sits between clients and
the server and can go down (every connection reset, new ones refused) after a byte budget:
"the server stopped mid-push", with the server's state kept for the retry.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time

BUCKET = "salmubench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class S3Server:
    def __init__(self) -> None:
        import boto3

        self.port = free_port()
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        iam = boto3.client(
            "iam",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="ci")
        key = iam.create_access_key(UserName="ci")["AccessKey"]
        iam.put_user_policy(
            UserName="ci",
            PolicyName="all",
            PolicyDocument='{"Version": "2012-10-17", "Statement": '
            '[{"Effect": "Allow", "Action": "*", "Resource": "*"}]}',
        )
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        self.client().create_bucket(Bucket=BUCKET)

    def env(self, endpoint: str | None = None, **overrides: str) -> dict[str, str]:
        """The environment a client needs: endpoint and credentials, nothing else."""
        return {
            "AWS_ENDPOINT_URL_S3": endpoint or self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "SALMUBENCH_S3_ATTEMPTS": "2",
            "SALMUBENCH_S3_TIMEOUT": "5",
            **overrides,
        }

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key)  # fmt: skip

    def keys(self, prefix: str = "") -> dict[str, bytes]:
        """Every object under `prefix` with its bytes (read straight from the server)."""
        s3 = self.client()
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        names = [o["Key"] for page in pages for o in page.get("Contents", [])]
        return {k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in names}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class FaultProxy:
    """A TCP proxy to the server that can be taken down, at once or after N bytes."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.budget: int | None = None  # client->server bytes left before going down
        self.is_down = False
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def down_after(self, nbytes: int) -> None:
        with self.lock:
            self.budget = nbytes

    def down(self) -> None:
        with self.lock:
            self.is_down = True
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
            self.sockets.clear()

    def up(self) -> None:
        with self.lock:
            self.is_down, self.budget = False, None

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if self.is_down:
                    client.close()
                    continue
                server = socket.create_connection(("127.0.0.1", self.upstream))
                self.sockets += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, upload: bool) -> None:
        try:
            while data := src.recv(65536):
                if upload:
                    with self.lock:
                        if self.budget is not None:
                            self.budget -= len(data)
                            exhausted = self.budget <= 0
                        else:
                            exhausted = False
                    if exhausted:
                        self.down()
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()

    def close(self) -> None:
        self.down()
        self.listener.close()
