"""What every server-side SASL mechanism shares (sans-IO: bytes in, bytes out).

A mechanism's server is fed the client's tokens one at a time by `evaluate`
and returns the challenge to send back; once `complete` is true,
`authorization_id` names the user. A failure raises `SaslFailure`:
`reveal=True` (Kafka's SaslAuthenticationException) sends its message to the
client as it is; `reveal=False` (a plain SaslException in Kafka) sends Kafka's
generic "invalid credentials" text instead and keeps the detail for the log.
"""

from __future__ import annotations

from typing import Protocol

PLAIN = "PLAIN"
SCRAM_SHA_256 = "SCRAM-SHA-256"
SCRAM_SHA_512 = "SCRAM-SHA-512"
OAUTHBEARER = "OAUTHBEARER"
GSSAPI = "GSSAPI"
SUPPORTED_MECHANISMS = (PLAIN, SCRAM_SHA_256, SCRAM_SHA_512, OAUTHBEARER)


class SaslFailure(Exception):
    """Authentication failed. `reveal`: the message goes to the client as it is."""

    def __init__(self, message: str, *, reveal: bool = False, illegal_state: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.reveal = reveal
        self.illegal_state = illegal_state  # a token out of place: ILLEGAL_SASL_STATE


def client_message(failure: SaslFailure, mechanism: str, reauthenticating: bool = False) -> str:
    """The error message Kafka sends the client for `failure`."""
    if failure.reveal or failure.illegal_state:
        return failure.message
    what = "re-authentication" if reauthenticating else "authentication"
    return f"Authentication failed during {what} due to invalid credentials with SASL mechanism {mechanism}"


class SaslServer(Protocol):
    """One authentication exchange, server side."""

    mechanism: str

    @property
    def complete(self) -> bool: ...

    @property
    def authorization_id(self) -> str: ...

    @property
    def credential_expiry_ms(self) -> int | None:
        """When the credential stops being valid (OAUTHBEARER's token `exp`), epoch ms."""
        ...

    def evaluate(self, token: bytes) -> bytes: ...
