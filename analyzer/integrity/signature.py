"""A digest's signature: SHA256withRSA over the data signing string AWS documents.

The string ("Custom implementations of CloudTrail log file integrity validation", and what
``validate-logs`` builds) is, joined by ``\\n``: ``digestEndTime`` as written in the file,
``digestS3Bucket/digestS3Object``, the hex SHA-256 of the digest file's uncompressed content, and
``previousDigestSignature`` (the text ``null`` for the first digest of a chain). The signature is
hex in the digest object's ``x-amz-meta-signature`` metadata; a later digest repeats it as its
``previousDigestSignature``, which is how a copy without S3 metadata can still be checked.
"""

from __future__ import annotations

import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from analyzer.integrity.digest import Digest
from analyzer.integrity.keys import PublicKey

ALGORITHM = "SHA256withRSA"


def signing_string(digest: Digest) -> bytes:
    """The bytes CloudTrail signed for ``digest``."""
    previous = digest.previous_signature if digest.previous_signature is not None else "null"
    return f"{digest.end_text}\n{digest.bucket}/{digest.key}\n{digest.sha256}\n{previous}".encode()


def signature_valid(digest: Digest, signature_hex: str, key: PublicKey) -> bool:
    """Whether ``signature_hex`` is ``key``'s SHA256withRSA signature of ``digest`` (False for non-hex)."""
    try:
        signature = binascii.unhexlify(signature_hex.strip())
    except (binascii.Error, ValueError):
        return False
    try:
        key.rsa().verify(signature, signing_string(digest), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
