#!/usr/bin/env python3
"""An internal service integrating with Guardline from Python.

It generates its stubs from the repository's protos with grpcio-tools,
connects over mutual TLS with a client certificate, onboards a tenant whose
admin logs in with TOTP, creates a lead and reads it back masked, asks for a
pre-dial decision, and decodes a field violation from the standard
google.rpc.BadRequest error details.

    pip install -r examples/python/requirements.txt
    make run        # in another terminal: guardline up, data in ./.guardline
    python3 examples/python/client.py --data-dir ./.guardline

Endpoints default to `guardline up`'s ports on localhost (7101 to 7105);
override them with --endpoint NAME=HOST:PORT.
"""
import argparse
import base64
import hashlib
import hmac
import os
import struct
import sys
import tempfile
import time
import urllib.parse

import grpc
from grpc_status import rpc_status
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PORTS = {"identity": 7101, "lead-vault": 7102, "dialer-policy": 7103, "recordings": 7104, "audit": 7105}


def generate(out):
    """Python stubs for every Guardline proto, into `out`."""
    wkt = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    files = []
    for root, _, names in os.walk(os.path.join(PROTO, "guardline")):
        files += [os.path.relpath(os.path.join(root, n), PROTO) for n in names if n.endswith(".proto")]
    args = ["protoc", f"-I{PROTO}", f"-I{wkt}", f"--python_out={out}", f"--grpc_python_out={out}", *sorted(files)]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, out)


def totp(uri, at=None):
    """The current RFC 6238 code for an otpauth:// URI."""
    q = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)
    secret = q["secret"][0]
    key = base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)
    digits = int(q.get("digits", ["6"])[0])
    period = int(q.get("period", ["30"])[0])
    algorithm = q.get("algorithm", ["SHA1"])[0].lower()
    counter = int((at or time.time()) // period)
    mac = hmac.new(key, struct.pack(">Q", counter), getattr(hashlib, algorithm)).digest()
    offset = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF) % 10**digits
    return str(code).zfill(digits)


def channel(endpoint, data_dir):
    """An mTLS channel with the CLI client certificate of `guardline up`."""
    pki = os.path.join(data_dir, "pki")
    read = lambda name: open(os.path.join(pki, name), "rb").read()
    creds = grpc.ssl_channel_credentials(
        root_certificates=read("ca.pem"), private_key=read("cli-key.pem"), certificate_chain=read("cli.pem")
    )
    return grpc.secure_channel(endpoint, creds)


def bearer(token):
    return [("authorization", f"Bearer {token}")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="./.guardline")
    ap.add_argument("--endpoint", action="append", default=[], help="NAME=HOST:PORT")
    args = ap.parse_args()
    endpoints = {name: f"localhost:{port}" for name, port in PORTS.items()}
    for e in args.endpoint:
        name, _, addr = e.partition("=")
        endpoints[name] = addr.replace("https://", "")

    generate(tempfile.mkdtemp(prefix="guardline-python-"))
    from guardline.dialer.v1 import dialer_pb2, dialer_pb2_grpc
    from guardline.identity.v1 import identity_pb2, identity_pb2_grpc
    from guardline.vault.v1 import vault_pb2, vault_pb2_grpc
    from google.rpc import error_details_pb2

    identity = identity_pb2_grpc.IdentityServiceStub(channel(endpoints["identity"], args.data_dir))
    vault = vault_pb2_grpc.LeadVaultServiceStub(channel(endpoints["lead-vault"], args.data_dir))
    dialer = dialer_pb2_grpc.DialerPolicyServiceStub(channel(endpoints["dialer-policy"], args.data_dir))

    tenant = identity.CreateTenant(identity_pb2.CreateTenantRequest(name=f"Python client {int(time.time())}"))
    print(f"tenant created: {tenant.id}")
    password = "a long python passphrase"
    identity.CreateUser(
        identity_pb2.CreateUserRequest(
            tenant_id=tenant.id, login="py-admin", display_name="Py Admin", password=password, roles=["admin"]
        )
    )
    creds = dict(tenant_id=tenant.id, login="py-admin", password=password)
    uri = identity.EnrollTotp(identity_pb2.EnrollTotpRequest(**creds)).provisioning_uri
    now = time.time()
    identity.ConfirmTotp(identity_pb2.ConfirmTotpRequest(code=totp(uri, now), **creds))
    # A code is good once: the login takes the next time step's (the server
    # accepts one step of drift).
    login = identity.Login(identity_pb2.LoginRequest(totp_code=totp(uri, now + 30), **creds))
    token = login.access_token
    print("admin logged in with TOTP")

    lead = vault.CreateLead(
        vault_pb2.CreateLeadRequest(
            tenant_id=tenant.id, lead=vault_pb2.LeadInput(phones=["+8613812345678"], name="李四")
        ),
        metadata=bearer(token),
    )
    read = vault.GetLead(vault_pb2.GetLeadRequest(tenant_id=tenant.id, lead_id=lead.id), metadata=bearer(token))
    print(f"lead {read.id} read back masked: {read.phones[0].masked}")

    decision = dialer.CheckCall(
        dialer_pb2.CheckCallRequest(
            tenant_id=tenant.id, lead_id=lead.id, caller_line="+14155552671", purpose="service"
        ),
        metadata=bearer(token),
    )
    verdict = dialer_pb2.Verdict.Name(decision.verdict)
    print(f"pre-dial decision: {verdict} ({len(decision.rules)} rules, decided for {decision.decided_for.ToJsonString()})")

    try:
        vault.CreateLead(
            vault_pb2.CreateLeadRequest(tenant_id=tenant.id, lead=vault_pb2.LeadInput(phones=["not a number"])),
            metadata=bearer(token),
        )
        sys.exit("a bad phone number was accepted")
    except grpc.RpcError as e:
        status = rpc_status.from_call(e)
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                for v in bad.field_violations:
                    print(f"field violation ({e.code().name}): {v.field}: {v.description}")
                break
        else:
            sys.exit(f"no BadRequest in the details of {e.code().name}")


if __name__ == "__main__":
    main()
