"""The hop floor: bare grpcio, one unary method, bytes in and a fixed reply out.

What one internal hop costs physically (a Python grpc client, HTTP/2 over
loopback, a Python grpc server thread) with nothing of the project's around
it: no interceptors, no protobuf parsing, no Django, no JSON. The bench sends
it a request the size of a real ``Repository.Invoke`` of ``users.repo.
user_get`` and it answers with as many bytes as that call's reply, so the
bytes on the wire match the hop it stands for.

Run as ``python -m bench.floor_echo --plain ADDR:PORT --tls ADDR:PORT --cert
C --key K --ca CA --reply-bytes N``: one process serves both ports, the
``--tls`` one with mutual TLS exactly as the tiers do (``require_client_auth``,
the same kind of certificate), so the two measurements differ only in TLS.
"""

import argparse
import os
import sys
from concurrent import futures
from pathlib import Path

import grpc

from bench.procstat import stop_on_signals

SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Invoke"
READY = "echo ready pid"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plain", required=True, help="ADDR:PORT for plaintext")
    parser.add_argument("--tls", required=True, help="ADDR:PORT for mutual TLS")
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--reply-bytes", type=int, required=True)
    parser.add_argument("--max-workers", type=int, default=10)
    args = parser.parse_args()
    if args.reply_bytes < 0:
        parser.error("--reply-bytes must not be negative")
    reply: bytes = b"r" * int(args.reply_bytes)

    def invoke(request: bytes, context: grpc.ServicerContext) -> bytes:
        return reply

    stop = stop_on_signals()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.max_workers),
        options=[("grpc.so_reuseport", 0)],
    )
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Invoke": grpc.unary_unary_rpc_method_handler(invoke)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(args.plain)
    credentials = grpc.ssl_server_credentials(
        [(args.key.read_bytes(), args.cert.read_bytes())],
        root_certificates=args.ca.read_bytes(),
        require_client_auth=True,
    )
    server.add_secure_port(args.tls, credentials)
    server.start()
    print(f"{READY} {os.getpid()}", flush=True)
    while not stop.wait(timeout=1.0):
        pass
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
