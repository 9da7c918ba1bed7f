"""`zen-flow certs --out DIR --dns NAME... [--ip IP...] [--keep-ca-key]`.

Writes ca.crt, tls.crt and tls.key (mode 0600) for the webhook's serving certificate, via
`certs.authority`. The CA's key is discarded unless --keep-ca-key; with it kept in DIR, a later
run re-issues tls.crt/tls.key from the same CA, so the caBundle registered with the API server
stays valid and the running webhook picks the new pair up without a restart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from certs import authority


def _command(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(
            f"zen-flow certs: --out {out} exists and is not a directory; choose a directory",
            file=sys.stderr,
        )
        return 2
    try:
        _ca, serving = authority.write_bundle(
            out,
            dns_names=args.dns or [],
            ip_addresses=args.ip or [],
            keep_ca_key=args.keep_ca_key,
        )
    except authority.CertificateError as exc:
        print(f"zen-flow certs: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"zen-flow certs: cannot write to {out}: {exc.strerror}; check the path and "
            "its permissions",
            file=sys.stderr,
        )
        return 1
    cert = serving.certificate
    print(
        f"wrote {out / authority.CA_CERT_FILE}, {out / authority.CERT_FILE}, "
        f"{out / authority.KEY_FILE} (serial {cert.serial_number:x}, valid until "
        f"{cert.not_valid_after_utc:%Y-%m-%d})"
    )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "certs",
        help="create a CA and the webhook's serving certificate",
        description="Write ca.crt, tls.crt and tls.key (0600) for the webhook. The certificate "
        "names every --dns name and --ip address the API server dials.",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="directory to write to")
    parser.add_argument(
        "--dns",
        action="extend",
        nargs="+",
        metavar="NAME",
        help="DNS name, e.g. zen-flow-webhook.zen-flow.svc (repeatable)",
    )
    parser.add_argument(
        "--ip",
        action="extend",
        nargs="+",
        metavar="IP",
        help="IP address, e.g. 127.0.0.1 (repeatable)",
    )
    parser.add_argument(
        "--keep-ca-key",
        action="store_true",
        help="also write ca.key (0600) so later runs re-issue from the same CA",
    )
    parser.set_defaults(func=_command)
