"""The pure-Python age package (PyPI `age` 0.5.1), an implementation of age independent of the rage that pyrage binds,
with one bug of its own fixed for the interoperability tests.

age 0.5.1 checks a header's MAC over the header as it writes it again (age.format.dump_header), not as it read it, and
writes a stanza without arguments as "-> TYPE " (a trailing space) and a body of a multiple of 64 characters without
the empty line that ends it in the spec (age-encryption.org/v1, "the final line MUST be shorter than 64 columns"). rage
writes a random "grease" stanza into every file, in about a quarter of them without arguments: age 0.5.1 refuses those
files ("Signature did not match digest"), which the age and rage binaries decrypt. The fix writes the header as the
spec does; everything else (X25519, the MAC, the payload) is the package's own.

Run as a script, it is the package's `pyage` command.
"""

import typing
import warnings

with warnings.catch_warnings():  # the package imports DSA support, which cryptography deprecates
    warnings.simplefilter("ignore")
    import age.file
    import age.format
    from age.cli import main
    from age.primitives.encode import encode


def dump_header(header: age.format.Header, stream: typing.BinaryIO, mac: bytes | None = None) -> None:
    """The header as the spec writes it: "-> TYPE ARGS…" with single spaces, the body in lines of 64 characters and a
    last line shorter than 64 (empty when the body's length is a multiple of 64)."""
    stream.write(age.format.AGE_INTRO.encode() + b"\n")
    for recipient in header.recipients:
        stream.write(" ".join([age.format.RECIPIENT_PREFIX, recipient.type, *recipient.arguments]).encode() + b"\n")
        body = recipient.body
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        if len(body) % 64 == 0:
            lines.append("")
        stream.write("\n".join(lines).encode() + b"\n")
    stream.write((age.format.FOOTER_PREFIX + (" " + encode(mac) if mac else "")).encode())


age.format.dump_header = dump_header
age.file.dump_header = dump_header  # type: ignore[attr-defined]

if __name__ == "__main__":
    main()
